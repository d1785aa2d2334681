<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use Redis;
use RedisException;

/**
 * Connects a phpredis client to one server and logs in: what a single server, a sentinel and a
 * Sentinel-managed primary share.
 */
final class ServerConnector
{
    private function __construct()
    {
    }

    /** @throws RedisException when the server cannot be reached or refuses the login */
    public static function connect(
        Redis $redis,
        RedisEndpoint $endpoint,
        float $connectTimeout,
        float $readTimeout,
    ): void {
        $address = [$endpoint->address(), $endpoint->port, $connectTimeout, null, 0, $readTimeout];
        $context = $endpoint->context();
        $connected = $redis->connect(...($context === null ? $address : [...$address, $context]));
        if (!$connected) {
            throw new RedisException("cannot connect to {$endpoint->host}:{$endpoint->port}");
        }
        $credentials = $endpoint->credentials();
        if ($credentials !== null && !$redis->auth($credentials)) {
            throw new RedisException('authentication failed: ' . ($redis->getLastError() ?? 'no reason given'));
        }
        if ($credentials === null) {
            // A server that wants a login answers a first command of more than ten parts (a
            // script call) with a protocol error, not NOAUTH, and hangs up; PING hears NOAUTH,
            // which phpredis raises: an outage until the login is given or dropped, as a wrong one is.
            $redis->ping();
        }
        if ($endpoint->database !== 0 && !$redis->select($endpoint->database)) {
            throw new RedisException("cannot select database {$endpoint->database}");
        }
    }

    /** Closes a client that may already be gone. */
    public static function close(Redis $redis): void
    {
        try {
            $redis->close();
        } catch (RedisException) {
            // It is already gone.
        }
    }
}
