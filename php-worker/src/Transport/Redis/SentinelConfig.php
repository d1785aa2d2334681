<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

/**
 * Where to ask for the primary: the sentinels (in the order to ask them), the master group name
 * they monitor, and their own login (a password, or an ACL user and password) when they require
 * AUTH.
 */
final class SentinelConfig
{
    /**
     * @param non-empty-list<RedisEndpoint> $sentinels
     */
    public function __construct(
        public readonly array $sentinels,
        public readonly string $masterName,
        public readonly ?string $password = null,
        public readonly ?string $username = null,
    ) {
    }
}
