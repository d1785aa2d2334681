<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use Closure;
use Jobgate\Worker\Transport\Unavailable;
use Redis;
use RedisException;

/**
 * What a phpredis connection to one server shares: scripts by SHA with a fallback to
 * the source, several scripts in one pipeline, and telling outages from bugs.
 */
abstract class PhpRedisConnection implements Connection
{
    /**
     * Error replies that mean "cannot serve now", not a bug: a failover, a dataset loading, out
     * of memory, a busy script, failing snapshots (MISCONF), a full client table, or a connection
     * not (or no longer) logged in (NOAUTH, or the protocol error a server that wants a login
     * gives a long first command: the reconnect that follows logs in again).
     */
    private const UNAVAILABLE_REPLIES = '/^(LOADING|CLUSTERDOWN|MASTERDOWN|READONLY|TRYAGAIN|OOM|BUSY|NOREPLICAS'
        . '|MISCONF|NOAUTH|ERR max number of clients reached|ERR Protocol error: unauthenticated)\b/';

    private ?Redis $client = null;
    /** @var array<string, true> SHA1s of the scripts the server ran for this connection (see runScripts()) */
    private array $knownScripts = [];

    /**
     * @param float $readTimeout seconds; must exceed the longest blocking wait
     */
    public function __construct(
        protected readonly float $connectTimeout,
        protected readonly float $readTimeout,
    ) {
    }

    /** Opens a new client; phpredis exceptions mean Redis is unreachable. */
    abstract protected function connect(): Redis;

    public function runScript(Script $script, array $keys, array $args): array
    {
        return $this->guarded(function (Redis $client) use ($script, $keys, $args): array {
            $arguments = [...$keys, ...$args];
            $client->clearLastError();
            $reply = self::movedAware(
                $script,
                fn (): mixed => $client->evalSha($script->sha1, $arguments, $script->numberOfKeys),
            );
            $error = $client->getLastError();
            if ($reply === false && is_string($error) && str_starts_with($error, 'NOSCRIPT')) {
                // This server has not seen the script yet, or its script cache was emptied (then
                // no other script is known either): EVAL runs it and caches it.
                $this->knownScripts = [];
                $client->clearLastError();
                $reply = self::movedAware(
                    $script,
                    fn (): mixed => $client->eval($script->source, $arguments, $script->numberOfKeys),
                );
                $error = $client->getLastError();
            }
            if (is_string($error) && $error !== '') {
                $client->clearLastError();
                // ASK: the slot is being migrated; TRYAGAIN: its keys are split between two nodes.
                if (preg_match(self::UNAVAILABLE_REPLIES, $error) || str_starts_with($error, 'ASK ')) {
                    throw new Unavailable($error);
                }
                throw SlotMoved::fromReply($error, $script->name) ?? new ScriptFailed("{$script->name}: {$error}");
            }
            self::refuseEcho($reply);
            if (!self::isReply($reply)) {
                throw new ScriptFailed("{$script->name}: unexpected reply " . var_export($reply, true));
            }
            $this->knownScripts[$script->sha1] = true;

            return $reply;
        });
    }

    /**
     * One pipeline once the server is known to hold every script of the calls; until then (the
     * first use of a script on a connection), one call after another.
     *
     * A call answered NOSCRIPT in a pipeline did not run, but the later calls did: run again, it
     * would come after them. For an ack followed by a reserve, that reserve could reclaim the
     * job's lease if it had just run out, where the ack alone would still be honoured. So a script
     * goes into a pipeline only after the server ran it for this connection, and a NOSCRIPT
     * anywhere (the script cache was emptied) makes every script unknown again. What is left: a
     * cache emptied under a live connection (SCRIPT FLUSH, a restart phpredis reconnected to
     * unseen) in which another client loaded a later script before this pipeline.
     *
     * A pipelined call answered with anything but a reply array (phpredis gives false for an
     * error reply, e.g. NOSCRIPT after SCRIPT FLUSH) runs again alone through runScript(), which
     * falls back to EVAL and raises every other error. That is safe: a NOSCRIPT reply means the
     * script did not run, and any other error comes back the same way and is raised there.
     */
    public function runScripts(array $calls): array
    {
        foreach ($calls as $call) {
            if (!isset($this->knownScripts[$call->script->sha1])) {
                return $this->runEach($calls);
            }
        }
        $replies = $this->guarded(function (Redis $client) use ($calls): array {
            $arguments = array_map(static fn (ScriptCall $call): array => [...$call->keys, ...$call->args], $calls);
            $client->clearLastError();
            // phpredis waits up to the read timeout for each reply: shared out, the pipeline as a
            // whole waits no longer than one call would (the bound --lease is checked against).
            $client->setOption(Redis::OPT_READ_TIMEOUT, $this->readTimeout / count($calls));
            try {
                $client->multi(Redis::PIPELINE);
                foreach ($calls as $i => $call) {
                    $client->evalSha($call->script->sha1, $arguments[$i], $call->script->numberOfKeys);
                }
                $replies = $client->exec();
            } finally {
                $client->setOption(Redis::OPT_READ_TIMEOUT, $this->readTimeout);
            }
            $client->clearLastError();
            if (!is_array($replies) || count($replies) !== count($calls)) {
                // Not an answer to what was sent: the connection cannot be trusted any more.
                throw new Unavailable('the pipeline got no reply for each call');
            }
            foreach ($replies as $reply) {
                self::refuseEcho($reply);
            }

            return array_values($replies);
        });
        foreach ($calls as $i => $call) {
            if (!self::isReply($replies[$i])) {
                $replies[$i] = $this->runScript($call->script, $call->keys, $call->args);
            }
        }

        return $replies;
    }

    public function waitForWake(array $wakeKeys, float $seconds): ?string
    {
        if ($wakeKeys === [] || $seconds < 0.001) {
            return null;
        }

        // One BLPOP over all the wake lists; phpredis 5's blPop() takes whole seconds only, the raw
        // command decimals. The reply names the list a token was taken from; none for a timeout.
        $arguments = [...$wakeKeys, self::timeoutArgument($seconds)];
        $popped = $this->guarded(fn (Redis $client): mixed => $client->rawCommand('BLPOP', ...$arguments));

        return is_array($popped) && is_string($popped[0] ?? null) ? $popped[0] : null;
    }

    public function pushWake(string $wakeKey): void
    {
        $this->guarded(fn (Redis $client): mixed => $client->lPush($wakeKey, '1'));
    }

    public function reset(): void
    {
        $client = $this->client;
        $this->client = null;
        // The next connection may reach another server (a failover behind the same address).
        $this->knownScripts = [];
        try {
            $client?->close();
        } catch (RedisException) {
            // It is already gone.
        }
    }

    /** BLPOP's timeout: seconds with millisecond precision (Redis ≥ 6 takes decimals). */
    private static function timeoutArgument(float $seconds): string
    {
        return sprintf('%.3F', $seconds);
    }

    /**
     * The calls one after another, each through runScript().
     *
     * @param non-empty-list<ScriptCall> $calls
     * @return list<array<int, mixed>>
     */
    private function runEach(array $calls): array
    {
        return array_map(
            fn (ScriptCall $call): array => $this->runScript($call->script, $call->keys, $call->args),
            $calls,
        );
    }

    /**
     * A reply that is the command itself comes from a connection to itself, not from Redis: a
     * reconnect to a port the server left free, in the ephemeral range, can get the same port
     * for its own end (TCP's simultaneous open). An outage, not a script's bug.
     */
    private static function refuseEcho(mixed $reply): void
    {
        if (is_array($reply) && in_array($reply[0] ?? null, ['EVALSHA', 'EVAL'], true)) {
            throw new Unavailable('the connection answered with the command it sent: it is connected to itself');
        }
    }

    /** A script's reply: an array led by its status. */
    private static function isReply(mixed $reply): bool
    {
        return is_array($reply) && isset($reply[0]) && is_string($reply[0]);
    }

    /**
     * @template T
     * @param callable(Redis): T $command
     * @return T
     */
    /**
     * phpredis raises most error replies (all but `ERR …`, `NOSCRIPT` and a few more) as a
     * RedisException rather than returning false; a MOVED among them is the answer of a healthy
     * connection, for a cluster connection to follow, not an outage.
     *
     * @param Closure(): mixed $call
     */
    private static function movedAware(Script $script, Closure $call): mixed
    {
        try {
            return $call();
        } catch (RedisException $exception) {
            throw SlotMoved::fromReply($exception->getMessage(), $script->name) ?? $exception;
        }
    }

    private function guarded(callable $command): mixed
    {
        try {
            $this->client ??= $this->connect();

            return $command($this->client);
        } catch (RedisException $exception) {
            $this->reset();
            throw new Unavailable($exception->getMessage() ?: $exception::class, null, $exception);
        } catch (Unavailable $unavailable) {
            $this->reset();
            throw $unavailable;
        }
    }
}
