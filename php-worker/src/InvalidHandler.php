<?php

declare(strict_types=1);

namespace Jobgate\Worker;

use UnexpectedValueException;

/**
 * A lazy entry of the handler map gave something that is not a Handler: every job of its type
 * would fail the same way, so the job fails for good (a fixed worker can be given it by redrive).
 */
final class InvalidHandler extends UnexpectedValueException
{
}
