<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport;

/**
 * Delays between attempts to reach a server that did not answer: exponential, capped.
 */
final class Backoff
{
    private int $failures = 0;

    public function __construct(
        private readonly int $initialMs = 100,
        private readonly int $maxMs = 5000,
    ) {
    }

    /** The delay before the next attempt; each call doubles the following one. */
    public function nextDelayMs(): int
    {
        $delay = min($this->maxMs, $this->initialMs * 2 ** min($this->failures, 30));
        $this->failures++;

        return (int) $delay;
    }

    public function reset(): void
    {
        $this->failures = 0;
    }
}
