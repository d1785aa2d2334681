<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use Closure;
use Redis;
use RedisCluster;
use RedisException;

/**
 * One Redis server (or a Sentinel-managed primary behind a stable address).
 */
final class StandaloneConnection extends PhpRedisConnection
{
    /**
     * @param (Closure(): Redis)|null $newClient makes the unconnected client (tests pass a double)
     */
    public function __construct(
        private readonly RedisEndpoint $endpoint,
        float $connectTimeout,
        float $readTimeout,
        private readonly ?Closure $newClient = null,
    ) {
        parent::__construct($connectTimeout, $readTimeout);
    }

    protected function connect(): Redis
    {
        $redis = $this->newClient === null ? new Redis() : ($this->newClient)();
        $connected = $redis->connect(
            $this->endpoint->address(),
            $this->endpoint->port,
            $this->connectTimeout,
            null,
            0,
            $this->readTimeout,
        );
        if (!$connected) {
            throw new RedisException("cannot connect to {$this->endpoint->host}:{$this->endpoint->port}");
        }
        $credentials = $this->endpoint->credentials();
        if ($credentials !== null && !$redis->auth($credentials)) {
            throw new RedisException('authentication failed: ' . ($redis->getLastError() ?? 'no reason given'));
        }
        if ($this->endpoint->database !== 0 && !$redis->select($this->endpoint->database)) {
            throw new RedisException("cannot select database {$this->endpoint->database}");
        }

        return $redis;
    }

    protected function blockingPop(Redis|RedisCluster $client, array $wakeKeys, float $seconds): void
    {
        // phpredis 5's blPop() takes whole seconds only; the raw command takes decimals.
        $client->rawCommand('BLPOP', ...[...$wakeKeys, self::timeoutArgument($seconds)]);
    }
}
