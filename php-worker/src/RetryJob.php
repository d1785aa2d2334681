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
    /** The longest delay the gateway accepts (openapi.yaml, RetryRequest.delay_ms): a year. */
    public const MAX_DELAY_MS = 31_536_000_000;

    /** The delay asked for, cut to MAX_DELAY_MS; null = the job's back-off. */
    public readonly ?int $delayMs;

    public function __construct(
        string $message = '',
        ?int $delayMs = null,
        ?Throwable $previous = null,
    ) {
        parent::__construct($message, 0, $previous);
        $this->delayMs = $delayMs === null ? null : min($delayMs, self::MAX_DELAY_MS);
    }
}
