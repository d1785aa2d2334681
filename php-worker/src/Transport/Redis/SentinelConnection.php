<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use Closure;
use Jobgate\Worker\Clock;
use Jobgate\Worker\SystemClock;
use Redis;
use RedisException;

/**
 * The primary of a Redis Sentinel master group: asked from the sentinels when connecting, and
 * asked again before a command, at most once per check interval, to follow a failover.
 *
 * Plain clients talk to the sentinels: phpredis 5's RedisSentinel cannot log in, and phpredis 6
 * changed its constructor.
 */
final class SentinelConnection extends PhpRedisConnection
{
    /** The sentinel that answered last, kept open for the next check. */
    private ?Redis $sentinel = null;
    /** Where the current connection goes; null when there is none. */
    private ?RedisEndpoint $primary = null;
    private int $checkedAtMs = 0;
    /** Checks in a row that reached no sentinel: each doubles the wait before the next one. */
    private int $failedChecks = 0;

    /** The longest wait between checks while no sentinel answers: 2^5 check intervals. */
    private const MAX_DOUBLINGS = 5;

    /**
     * @param RedisEndpoint $dataNode lends the primary its credentials, database and TLS, not its
     *        host and port
     * @param (Closure(): Redis)|null $newSentinelClient makes an unconnected client for a sentinel
     *        (tests pass a double)
     * @param (Closure(): Redis)|null $newPrimaryClient makes an unconnected client for the primary
     */
    public function __construct(
        private readonly SentinelConfig $config,
        private readonly RedisEndpoint $dataNode,
        float $connectTimeout,
        float $readTimeout,
        private readonly Clock $clock = new SystemClock(),
        private readonly int $checkIntervalMs = 1000,
        private readonly ?Closure $newSentinelClient = null,
        private readonly ?Closure $newPrimaryClient = null,
    ) {
        parent::__construct($connectTimeout, $readTimeout);
    }

    public function runScript(Script $script, array $keys, array $args): array
    {
        $this->followFailover();

        return parent::runScript($script, $keys, $args);
    }

    public function runScripts(array $calls): array
    {
        $this->followFailover();

        return parent::runScripts($calls);
    }

    public function waitForWake(array $wakeKeys, float $seconds): ?string
    {
        $this->followFailover();

        return parent::waitForWake($wakeKeys, $seconds);
    }

    public function pushWake(string $wakeKey): void
    {
        $this->followFailover();
        parent::pushWake($wakeKey);
    }

    public function reset(): void
    {
        $this->primary = null;
        parent::reset();
    }

    protected function connect(): Redis
    {
        $primary = $this->askForPrimary();
        $redis = $this->newPrimaryClient === null ? new Redis() : ($this->newPrimaryClient)();
        try {
            ServerConnector::connect($redis, $primary, $this->connectTimeout, $this->readTimeout);
            $redis->clearLastError();
            $role = $redis->rawCommand('ROLE');
        } catch (RedisException $exception) {
            ServerConnector::close($redis);
            throw $exception;
        }
        if (!is_array($role) || ($role[0] ?? null) !== 'master') {
            // A sentinel that has not caught up with a failover yet may still name the demoted primary.
            $found = is_array($role)
                ? 'its role is ' . json_encode($role[0] ?? null)
                : 'ROLE failed: ' . ($redis->getLastError() ?? 'no reply');
            ServerConnector::close($redis);
            throw new RedisException(
                "{$primary->host}:{$primary->port}, named master of \"{$this->config->masterName}\" by a sentinel, "
                . "is not a master ({$found})",
            );
        }
        $this->primary = $primary;
        $this->checkedAtMs = $this->clock->nowMs();
        $this->failedChecks = 0;

        return $redis;
    }

    /**
     * When a sentinel names another primary than the connected one, drops the connection: the
     * next command connects to the new one. Sentinels out of reach change nothing, but a hung one
     * costs each check its timeouts: while none answers, the checks come less and less often.
     */
    private function followFailover(): void
    {
        $interval = $this->checkIntervalMs << min($this->failedChecks, self::MAX_DOUBLINGS);
        if ($this->primary === null || $this->clock->nowMs() - $this->checkedAtMs < $interval) {
            return;
        }
        try {
            $primary = $this->askForPrimary();
            $this->failedChecks = 0;
        } catch (RedisException) {
            $this->failedChecks++;

            return;
        } finally {
            $this->checkedAtMs = $this->clock->nowMs();
        }
        if ($primary->host !== $this->primary->host || $primary->port !== $this->primary->port) {
            $this->reset();
        }
    }

    /**
     * The primary's address from the sentinel kept open, else from the first sentinel (in the
     * given order) that gives one.
     *
     * @throws RedisException when none does
     */
    private function askForPrimary(): RedisEndpoint
    {
        if ($this->sentinel !== null) {
            try {
                $primary = $this->primaryFrom($this->sentinel);
                if ($primary !== null) {
                    return $primary;
                }
            } catch (RedisException) {
                // Asked again below, over a new connection.
            }
            ServerConnector::close($this->sentinel);
            $this->sentinel = null;
        }
        $reasons = [];
        foreach ($this->config->sentinels as $sentinel) {
            $client = $this->newSentinelClient === null ? new Redis() : ($this->newSentinelClient)();
            $login = new RedisEndpoint(
                $sentinel->host,
                $sentinel->port,
                user: $this->config->username,
                password: $this->config->password,
                tls: $sentinel->tls,
            );
            try {
                // A sentinel answers at once: the connect timeout also bounds its replies.
                ServerConnector::connect($client, $login, $this->connectTimeout, $this->connectTimeout);
                $primary = $this->primaryFrom($client);
                if ($primary !== null) {
                    $this->sentinel = $client;

                    return $primary;
                }
                $reasons[] = "{$sentinel->host}:{$sentinel->port} does not know it";
            } catch (RedisException $exception) {
                $reasons[] = "{$sentinel->host}:{$sentinel->port}: {$exception->getMessage()}";
            }
            ServerConnector::close($client);
        }
        throw new RedisException(
            "no sentinel gave the address of master \"{$this->config->masterName}\" (" . implode('; ', $reasons) . ')',
        );
    }

    /**
     * @return RedisEndpoint|null the primary as the sentinel names it; null when it knows none
     * @throws RedisException
     */
    private function primaryFrom(Redis $sentinel): ?RedisEndpoint
    {
        $sentinel->clearLastError();
        $reply = $sentinel->rawCommand('SENTINEL', 'get-master-addr-by-name', $this->config->masterName);
        $error = $sentinel->getLastError();
        if (is_string($error) && $error !== '') {
            throw new RedisException($error);
        }
        if (!is_array($reply) || !is_string($reply[0] ?? null) || !ctype_digit((string) ($reply[1] ?? ''))) {
            return null;
        }

        return $this->dataNode->at($reply[0], (int) $reply[1]);
    }
}
