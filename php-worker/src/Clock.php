<?php

declare(strict_types=1);

namespace Jobgate\Worker;

interface Clock
{
    /** Milliseconds on a monotonic clock: only differences between two readings mean anything. */
    public function nowMs(): int;

    /** Sleeps; a signal may cut the sleep short. */
    public function sleepMs(int $ms): void;
}
