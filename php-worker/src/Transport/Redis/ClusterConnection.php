<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use Closure;
use Jobgate\Worker\Transport\Unavailable;
use Redis;
use RedisException;

/**
 * A Redis Cluster, found from seed nodes: one connection of one server per master, each call
 * sent to the master of its keys' slot (every key of a queue shares its hash tag, so its slot).
 *
 * The routing is the worker's own, not phpredis's RedisCluster: phpredis 5.3 (Debian's) crashes
 * the process with a segmentation fault when a MOVED reply names a node it has not mapped yet
 * while the slot's master had no replica (a slot moved to a new node, a failover back to a node
 * that had been down). Here a MOVED reply re-routes its slot and the call goes again; a node
 * that cannot be reached makes the next call read the slots again (CLUSTER SLOTS), from the
 * nodes known so far and the seeds.
 */
final class ClusterConnection implements Connection
{
    private const SLOT_COUNT = 16384;
    /** MOVED replies one call follows before the cluster counts as unavailable (slots in flux). */
    private const MAX_REDIRECTS = 5;

    /** @var list<array{int, int, string}> slot ranges: first, last, master's host:port */
    private array $ranges = [];
    /** @var array<int, string> slots a MOVED reply re-routed since the ranges were read */
    private array $moved = [];
    /** @var array<string, StandaloneConnection> by host:port */
    private array $nodes = [];
    /** @var list<string> host:port of every master seen, tried before the seeds when reading slots */
    private array $known = [];

    /**
     * @param non-empty-list<RedisEndpoint> $seeds each with the login and TLS of every node
     * @param (Closure(): Redis)|null $newClient makes each unconnected client (tests pass a double)
     */
    public function __construct(
        private readonly array $seeds,
        private readonly float $connectTimeout,
        private readonly float $readTimeout,
        private readonly ?Closure $newClient = null,
    ) {
    }

    public function runScript(Script $script, array $keys, array $args): array
    {
        $slot = self::slotOf($keys[0] ?? '');
        for ($redirects = 0;; $redirects++) {
            try {
                return $this->onNodeOf(
                    $slot,
                    fn (StandaloneConnection $node): array => $node->runScript($script, $keys, $args),
                );
            } catch (SlotMoved $moved) {
                if ($redirects >= self::MAX_REDIRECTS) {
                    throw new Unavailable("slot {$slot} keeps moving: {$moved->getMessage()}");
                }
                $this->moved[$moved->slot] = $moved->address;
            }
        }
    }

    /**
     * One call after another: the calls' keys may live on different nodes (two queues), and a
     * call re-routed by MOVED after the one before it ran cannot be undone.
     */
    public function runScripts(array $calls): array
    {
        return array_map(
            fn (ScriptCall $call): array => $this->runScript($call->script, $call->keys, $call->args),
            $calls,
        );
    }

    /** Each queue's wake list lives on its own node: one BLPOP after another, sharing the wait. */
    public function waitForWake(array $wakeKeys, float $seconds): ?string
    {
        if ($wakeKeys === []) {
            return null;
        }
        $share = $seconds / count($wakeKeys);
        if ($share < 0.001) {
            return null;
        }
        foreach ($wakeKeys as $wakeKey) {
            $popped = $this->onNodeOf(
                self::slotOf($wakeKey),
                fn (StandaloneConnection $node): ?string => $node->waitForWake([$wakeKey], $share),
            );
            if ($popped !== null) {
                return $popped;
            }
        }

        return null;
    }

    public function pushWake(string $wakeKey): void
    {
        $this->onNodeOf(self::slotOf($wakeKey), fn (StandaloneConnection $node) => $node->pushWake($wakeKey));
    }

    public function reset(): void
    {
        foreach ($this->nodes as $node) {
            $node->reset();
        }
        $this->nodes = [];
        $this->ranges = [];
        $this->moved = [];
    }

    /** The cluster slot of a key: CRC16 (XMODEM) of its hash tag, or of the whole key. */
    public static function slotOf(string $key): int
    {
        $open = strpos($key, '{');
        if ($open !== false) {
            $close = strpos($key, '}', $open + 1);
            if ($close !== false && $close > $open + 1) {
                $key = substr($key, $open + 1, $close - $open - 1);
            }
        }
        $crc = 0;
        $length = strlen($key);
        for ($i = 0; $i < $length; $i++) {
            $crc ^= ord($key[$i]) << 8;
            for ($bit = 0; $bit < 8; $bit++) {
                $crc = ($crc & 0x8000) !== 0 ? (($crc << 1) ^ 0x1021) & 0xFFFF : ($crc << 1) & 0xFFFF;
            }
        }

        return $crc % self::SLOT_COUNT;
    }

    /**
     * $call on the connection to the slot's master; a master that does not answer is forgotten,
     * and the next call reads the slots again.
     *
     * @template T
     * @param Closure(StandaloneConnection): T $call
     * @return T
     */
    private function onNodeOf(int $slot, Closure $call): mixed
    {
        $address = $this->nodeOf($slot);
        try {
            return $call($this->nodes[$address]);
        } catch (Unavailable $unavailable) {
            ($this->nodes[$address] ?? null)?->reset();
            unset($this->nodes[$address]);
            $this->ranges = [];
            $this->moved = [];
            throw $unavailable;
        }
    }

    /** host:port of the slot's master, with a connection to it ready in $this->nodes. */
    private function nodeOf(int $slot): string
    {
        if ($this->ranges === []) {
            $this->readSlots();
        }
        $address = $this->moved[$slot] ?? null;
        foreach ($address === null ? $this->ranges : [] as [$first, $last, $master]) {
            if ($slot >= $first && $slot <= $last) {
                $address = $master;
                break;
            }
        }
        if ($address === null) {
            throw new Unavailable("no node of the cluster serves slot {$slot}");
        }
        $this->nodes[$address] ??= new StandaloneConnection(
            $this->endpoint($address),
            $this->connectTimeout,
            $this->readTimeout,
            $this->newClient,
        );

        return $address;
    }

    /** CLUSTER SLOTS from the first node that answers: the masters seen before, then the seeds. */
    private function readSlots(): void
    {
        $candidates = [];
        // Each node once: a seed is often a master seen before, and one gone costs a connect timeout.
        foreach ([...array_map($this->endpoint(...), $this->known), ...$this->seeds] as $node) {
            $candidates[self::address($node->host, $node->port)] ??= $node;
        }
        $failures = [];
        foreach ($candidates as $candidate) {
            $client = $this->newClient === null ? new Redis() : ($this->newClient)();
            try {
                ServerConnector::connect($client, $candidate, $this->connectTimeout, $this->readTimeout);
                $reply = $client->rawCommand('CLUSTER', 'SLOTS');
                $error = $client->getLastError();
            } catch (RedisException $exception) {
                $failures[] = "{$candidate->host}:{$candidate->port}: {$exception->getMessage()}";
                continue;
            } finally {
                ServerConnector::close($client);
            }
            $ranges = self::rangesOf($reply, $candidate->host);
            if ($ranges === []) {
                $failures[] = "{$candidate->host}:{$candidate->port}: no slots (" . ($error ?? 'none served') . ')';
                continue;
            }
            $this->ranges = $ranges;
            $this->known = array_values(array_unique(array_column($ranges, 2)));

            return;
        }
        throw new Unavailable('no node of the cluster told its slots: ' . implode('; ', $failures));
    }

    /**
     * CLUSTER SLOTS's reply as ranges: [first, last, [host, port, id], replicas…] each. An empty
     * host means the node asked.
     *
     * @return list<array{int, int, string}>
     */
    private static function rangesOf(mixed $reply, string $askedHost): array
    {
        $ranges = [];
        foreach (is_array($reply) ? $reply : [] as $entry) {
            $master = is_array($entry) ? ($entry[2] ?? null) : null;
            if (!is_array($master) || !is_int($entry[0] ?? null) || !is_int($entry[1] ?? null)) {
                continue;
            }
            $host = is_string($master[0] ?? null) && $master[0] !== '' ? $master[0] : $askedHost;
            $ranges[] = [$entry[0], $entry[1], self::address($host, (int) ($master[1] ?? 0))];
        }

        return $ranges;
    }

    private static function address(string $host, int $port): string
    {
        return str_contains($host, ':') ? "[{$host}]:{$port}" : "{$host}:{$port}";
    }

    /** The node at host:port, with the seeds' login and TLS (a cluster has database 0 only). */
    private function endpoint(string $address): RedisEndpoint
    {
        $colon = strrpos($address, ':');
        $seed = $this->seeds[0];

        return new RedisEndpoint(
            trim(substr($address, 0, (int) $colon), '[]'),
            (int) substr($address, (int) $colon + 1),
            $seed->user,
            $seed->password,
            0,
            $seed->tls,
        );
    }
}
