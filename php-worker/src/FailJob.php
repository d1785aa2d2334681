<?php

declare(strict_types=1);

namespace Jobgate\Worker;

use RuntimeException;

/**
 * Thrown by a handler to give up on a job for good: it is dead at once, whatever attempts remain.
 */
class FailJob extends RuntimeException
{
}
