<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use Closure;
use Redis;

/**
 * One Redis server (or a primary behind a stable address that follows failovers).
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
        ServerConnector::connect($redis, $this->endpoint, $this->connectTimeout, $this->readTimeout);

        return $redis;
    }
}
