<?php

declare(strict_types=1);

namespace Jobgate\Worker;

use RuntimeException;
use Throwable;

/**
 * Thrown by a handler to run the job again after a delay of its choosing (null = the job's
 * back-off). On the last attempt the job is dead instead.
 */
class RetryJob extends RuntimeException
{
    public function __construct(
        string $message = '',
        public readonly ?int $delayMs = null,
        ?Throwable $previous = null,
    ) {
        parent::__construct($message, 0, $previous);
    }
}
