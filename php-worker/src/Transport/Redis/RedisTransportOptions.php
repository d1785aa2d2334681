<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

/**
 * What the Redis transport sends with the scripts besides the job.
 */
final class RedisTransportOptions
{
    /**
     * @param non-empty-list<string> $queues in priority order
     * @param int $blockMs longest wait for work per reserve
     */
    public function __construct(
        public readonly array $queues,
        public readonly string $workerId,
        public readonly int $leaseMs,
        public readonly int $blockMs,
        public readonly string $prefix = 'jobgate',
        public readonly int $jobRetentionMs = 86_400_000,
        public readonly int $deadRetentionMs = 604_800_000,
        public readonly int $eventsMaxLen = 10_000,
    ) {
    }
}
