<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport;

use RuntimeException;

/**
 * The server refused an ack or a retry for what the job gave it (a result larger than the
 * gateway's body limit, a field out of range): sending it again cannot help. Nothing was changed
 * and the lease is still held, so the worker reports a failure of the job instead.
 */
final class OutcomeRejected extends RuntimeException
{
}
