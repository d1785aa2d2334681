<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use Closure;
use Redis;
use RedisCluster;

/**
 * A Redis Cluster, found from seed nodes. Each queue lives in one slot (its hash tag), so a
 * worker of several queues blocks on their wake lists one at a time.
 */
final class ClusterConnection extends PhpRedisConnection
{
    /**
     * @param non-empty-list<RedisEndpoint> $seeds each with the login and TLS of every node
     * @param (Closure(): RedisCluster)|null $newClient makes the connected client (tests pass a double)
     */
    public function __construct(
        private readonly array $seeds,
        float $connectTimeout,
        float $readTimeout,
        private readonly ?Closure $newClient = null,
    ) {
        parent::__construct($connectTimeout, $readTimeout);
    }

    /**
     * One call after another: phpredis has no pipeline for a cluster, and the calls' keys may
     * live on different nodes (two queues).
     */
    public function runScripts(array $calls): array
    {
        return $this->runEach($calls);
    }

    protected function connect(): RedisCluster
    {
        if ($this->newClient !== null) {
            return ($this->newClient)();
        }
        $addresses = array_map(
            static fn (RedisEndpoint $seed): string => "{$seed->address()}:{$seed->port}",
            $this->seeds,
        );

        $login = $this->seeds[0]->credentials();
        $arguments = [null, $addresses, $this->connectTimeout, $this->readTimeout, false, $login];
        // RedisCluster takes the `ssl` stream options themselves, not Redis::connect's context
        // around them: given that, it verified against OpenSSL's default authorities only.
        $ssl = $this->seeds[0]->context()['stream'] ?? null;

        return new RedisCluster(...($ssl === null ? $arguments : [...$arguments, $ssl]));
    }

    protected function blockingPop(Redis|RedisCluster $client, array $wakeKeys, float $seconds): ?string
    {
        $share = $seconds / count($wakeKeys);
        if ($share < 0.001) {
            return null;
        }
        foreach ($wakeKeys as $wakeKey) {
            // The first argument routes the command to the node serving the key.
            $popped = self::poppedFrom($client->rawCommand($wakeKey, 'BLPOP', $wakeKey, self::timeoutArgument($share)));
            if ($popped !== null) {
                return $popped;
            }
        }

        return null;
    }
}
