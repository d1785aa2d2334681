<?php

declare(strict_types=1);

namespace Jobgate\Worker\Cli;

use Jobgate\Worker\Transport\Redis\RedisEndpoint;
use Jobgate\Worker\Transport\Redis\SentinelConfig;

/**
 * Everything the command line (and its environment fallbacks) decided.
 */
final class WorkerConfig
{
    /**
     * @param list<string> $queues in priority order
     * @param list<RedisEndpoint>|null $clusterSeeds null = one Redis server ($redis)
     * @param SentinelConfig|null $sentinel a primary found through Sentinel: $redis lends it only
     *        its credentials, database and TLS
     */
    public function __construct(
        public readonly array $queues,
        public readonly string $handlersFile,
        public readonly string $transport,
        public readonly RedisEndpoint $redis,
        public readonly ?array $clusterSeeds,
        public readonly ?SentinelConfig $sentinel,
        public readonly string $prefix,
        public readonly ?string $gatewayUrl,
        public readonly ?string $apiKey,
        public readonly int $timeoutSeconds,
        public readonly int $leaseSeconds,
        public readonly int $memoryMb,
        public readonly int $maxJobs,
        public readonly int $maxTimeSeconds,
        public readonly float $sleepSeconds,
        public readonly string $workerId,
        public readonly string $luaDir,
        public readonly int $jobRetentionMs,
        public readonly int $deadRetentionMs,
        public readonly int $eventsMaxLen,
    ) {
    }

    public function blockMs(): int
    {
        return max(1, (int) round($this->sleepSeconds * 1000));
    }
}
