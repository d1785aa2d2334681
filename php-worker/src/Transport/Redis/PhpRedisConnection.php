<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use Jobgate\Worker\Transport\Unavailable;
use Redis;
use RedisCluster;
use RedisClusterException;
use RedisException;

/**
 * What a phpredis connection (one server or a cluster) shares: scripts by SHA with a fallback to
 * the source, and telling outages from bugs.
 */
abstract class PhpRedisConnection implements Connection
{
    /** Error replies that mean "cannot serve now" (failover, loading, out of memory), not a bug. */
    private const UNAVAILABLE_REPLIES = '/^(LOADING|CLUSTERDOWN|MASTERDOWN|READONLY|TRYAGAIN|OOM|BUSY|NOREPLICAS)\b/';

    private Redis|RedisCluster|null $client = null;

    /**
     * @param float $readTimeout seconds; must exceed the longest blocking wait
     */
    public function __construct(
        protected readonly float $connectTimeout,
        protected readonly float $readTimeout,
    ) {
    }

    /** Opens a new client; phpredis exceptions mean Redis is unreachable. */
    abstract protected function connect(): Redis|RedisCluster;

    /** @param list<string> $wakeKeys */
    abstract protected function blockingPop(Redis|RedisCluster $client, array $wakeKeys, float $seconds): void;

    public function runScript(Script $script, array $keys, array $args): array
    {
        return $this->guarded(function (Redis|RedisCluster $client) use ($script, $keys, $args): array {
            $arguments = [...$keys, ...$args];
            $client->clearLastError();
            $reply = $client->evalSha($script->sha1, $arguments, $script->numberOfKeys);
            $error = $client->getLastError();
            if ($reply === false && is_string($error) && str_starts_with($error, 'NOSCRIPT')) {
                // This server has not seen the script yet: EVAL runs it and caches it.
                $client->clearLastError();
                $reply = $client->eval($script->source, $arguments, $script->numberOfKeys);
                $error = $client->getLastError();
            }
            if (is_string($error) && $error !== '') {
                $client->clearLastError();
                if (preg_match(self::UNAVAILABLE_REPLIES, $error)) {
                    throw new Unavailable($error);
                }
                throw new ScriptFailed("{$script->name}: {$error}");
            }
            if (!is_array($reply) || !isset($reply[0]) || !is_string($reply[0])) {
                throw new ScriptFailed("{$script->name}: unexpected reply " . var_export($reply, true));
            }

            return $reply;
        });
    }

    public function waitForWake(array $wakeKeys, float $seconds): void
    {
        if ($wakeKeys === [] || $seconds < 0.001) {
            return;
        }
        $this->guarded(function (Redis|RedisCluster $client) use ($wakeKeys, $seconds): void {
            $this->blockingPop($client, $wakeKeys, $seconds);
        });
    }

    public function reset(): void
    {
        $client = $this->client;
        $this->client = null;
        try {
            $client?->close();
        } catch (RedisException | RedisClusterException) {
            // It is already gone.
        }
    }

    /** BLPOP's timeout: seconds with millisecond precision (Redis ≥ 6 takes decimals). */
    protected static function timeoutArgument(float $seconds): string
    {
        return sprintf('%.3F', $seconds);
    }

    /**
     * @template T
     * @param callable(Redis|RedisCluster): T $command
     * @return T
     */
    private function guarded(callable $command): mixed
    {
        try {
            $this->client ??= $this->connect();

            return $command($this->client);
        } catch (RedisException | RedisClusterException $exception) {
            $this->reset();
            throw new Unavailable($exception->getMessage() ?: $exception::class, null, $exception);
        } catch (Unavailable $unavailable) {
            $this->reset();
            throw $unavailable;
        }
    }
}
