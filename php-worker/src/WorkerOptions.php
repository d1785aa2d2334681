<?php

declare(strict_types=1);

namespace Jobgate\Worker;

/**
 * The loop's limits and settings (the command line's --timeout, --lease, --memory, …).
 */
final class WorkerOptions
{
    /**
     * @param list<string> $queues for the `worker started` line
     * @param int $timeoutSeconds a job's time limit unless it has its own; 0 = none
     * @param int $leaseSeconds the lease a heartbeat asks for
     * @param int $memoryMb stop between jobs once the process holds this much; 0 = no limit
     * @param int $maxJobs stop after this many jobs; 0 = no limit
     * @param int $maxTimeSeconds stop after running this long; 0 = no limit
     */
    public function __construct(
        public readonly array $queues = [],
        public readonly int $timeoutSeconds = 60,
        public readonly int $leaseSeconds = 30,
        public readonly int $memoryMb = 96,
        public readonly int $maxJobs = 0,
        public readonly int $maxTimeSeconds = 0,
    ) {
    }

    /** Seconds between automatic heartbeats: a third of the lease, at least one. */
    public function heartbeatIntervalSeconds(): int
    {
        return max(1, intdiv($this->leaseSeconds, 3));
    }
}
