<?php

declare(strict_types=1);

namespace Jobgate\Worker;

use RuntimeException;

/**
 * Thrown by JobContext::progress() when the server refuses the progress for its size (over
 * 64 KiB of JSON, or, over HTTP, over the gateway's body limit). Nothing was recorded and the
 * lease was not extended; the handler may go on and report something smaller.
 */
final class ProgressRejected extends RuntimeException
{
}
