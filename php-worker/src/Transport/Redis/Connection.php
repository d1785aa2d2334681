<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use Jobgate\Worker\Transport\Unavailable;

/**
 * A connection to Redis (one server or a cluster) that runs the protocol's scripts. It connects
 * on first use and again after a failure.
 */
interface Connection
{
    /**
     * @param list<string> $keys
     * @param list<string> $args
     * @return array<int, mixed> the script's reply
     * @throws Unavailable when Redis cannot be reached or cannot serve now
     * @throws ScriptFailed on any other error reply
     */
    public function runScript(Script $script, array $keys, array $args): array;

    /**
     * Runs the calls in order, in one round trip where the connection can (one server), and
     * gives each reply as runScript() would.
     *
     * @param non-empty-list<ScriptCall> $calls
     * @return list<array<int, mixed>> the replies, in the order of the calls
     * @throws Unavailable when Redis cannot be reached or cannot serve now: any of the calls
     *         may have run
     * @throws ScriptFailed on any other error reply
     */
    public function runScripts(array $calls): array;

    /**
     * Blocks until a wake-up token arrives on one of the lists, or $seconds passed.
     *
     * @param list<string> $wakeKeys
     * @return string|null the list a token came from; null when none came
     * @throws Unavailable
     */
    public function waitForWake(array $wakeKeys, float $seconds): ?string;

    /**
     * Pushes a wake-up token back on $wakeKey: one this worker took and will not act on.
     *
     * @throws Unavailable
     */
    public function pushWake(string $wakeKey): void;

    /** Drops the connection; the next call connects again. */
    public function reset(): void;
}
