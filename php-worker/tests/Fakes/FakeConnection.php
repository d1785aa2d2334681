<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Fakes;

use Closure;
use Jobgate\Worker\Transport\Redis\Connection;
use Jobgate\Worker\Transport\Redis\Script;
use Jobgate\Worker\Transport\Redis\ScriptCall;
use Jobgate\Worker\Transport\Unavailable;

/**
 * Answers scripts from a list of replies (an Unavailable in the list is thrown instead) and
 * records every call. runScripts() takes one reply per call, in order, and stops at an
 * Unavailable.
 */
final class FakeConnection implements Connection
{
    /** @var list<array{string, list<string>, list<string>}> script name, keys, args */
    public array $scripts = [];
    /** @var list<list<string>> the script names of each runScripts() */
    public array $batches = [];
    /** @var list<list<ScriptCall>> the calls of each runScripts(), answered or not */
    public array $batchCalls = [];
    /** @var list<array{list<string>, float}> */
    public array $waits = [];
    /** @var list<?string> the wake list each wait gets a token from, if any (none when the list runs out) */
    public array $wakeUps = [];
    /** @var list<string> the wake lists tokens were pushed back on */
    public array $pushedWakes = [];
    /** @var Closure(): void runs during each wait (a signal arriving, say) */
    public Closure $onWait;
    public int $resets = 0;

    /** @param list<array<int, mixed>|Unavailable> $replies */
    public function __construct(public array $replies = [])
    {
        $this->onWait = static function (): void {
        };
    }

    public function runScript(Script $script, array $keys, array $args): array
    {
        $this->scripts[] = [$script->name, $keys, $args];
        $reply = array_shift($this->replies) ?? throw new \LogicException("no reply left for {$script->name}");
        if ($reply instanceof Unavailable) {
            throw $reply;
        }

        return $reply;
    }

    public function runScripts(array $calls): array
    {
        $this->batches[] = array_map(static fn (ScriptCall $call): string => $call->script->name, $calls);
        $this->batchCalls[] = $calls;

        return array_map(
            fn (ScriptCall $call): array => $this->runScript($call->script, $call->keys, $call->args),
            $calls,
        );
    }

    public function waitForWake(array $wakeKeys, float $seconds): ?string
    {
        $this->waits[] = [$wakeKeys, $seconds];
        ($this->onWait)();

        return array_shift($this->wakeUps);
    }

    public function pushWake(string $wakeKey): void
    {
        $this->pushedWakes[] = $wakeKey;
    }

    public function reset(): void
    {
        $this->resets++;
    }
}
