<?php

declare(strict_types=1);

namespace Jobgate\Worker;

/**
 * Whether the worker was asked to stop, shared by its loop and its transport's retries. A quit
 * signal (SIGTERM, SIGINT, SIGQUIT, or SIGHUP: a closed terminal) sets it, also one that arrives
 * while the worker holds those signals back and waits for Redis or the gateway to come back: that
 * wait ends at once.
 */
class StopRequest
{
    public const SIGNALS = [SIGTERM, SIGINT, SIGQUIT, SIGHUP];

    private bool $requested = false;

    public function request(): void
    {
        $this->requested = true;
    }

    /** Whether a stop was asked for; a quit signal held back meanwhile counts (and is taken). */
    public function isRequested(): bool
    {
        $info = [];
        if (!$this->requested && pcntl_sigtimedwait(self::SIGNALS, $info, 0, 0) > 0) {
            $this->requested = true;
        }

        return $this->requested;
    }

    /** Sleeps up to $ms; ends early, with the stop requested, when a quit signal arrives. */
    public function sleepMs(int $ms): void
    {
        if ($ms <= 0 || $this->requested) {
            return;
        }
        $info = [];
        // A held-back signal is taken here; one that is not held back runs its handler and
        // interrupts the wait the same way.
        if (pcntl_sigtimedwait(self::SIGNALS, $info, intdiv($ms, 1000), ($ms % 1000) * 1_000_000) > 0) {
            $this->requested = true;
        }
    }
}
