<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Fakes;

use Jobgate\Worker\Worker;

/**
 * The Worker without process-level effects: no signal handlers, alarms only recorded, and an
 * exit that records its code instead of ending PHPUnit.
 */
final class TestableWorker extends Worker
{
    /** @var list<int> seconds of every armAlarm(), 0 for every disarm */
    public array $alarms = [];
    /** @var list<int> */
    public array $exits = [];
    /** Runs at the start of each disarm: a SIGALRM that was already on its way then. */
    public ?\Closure $beforeDisarm = null;

    protected function installSignalHandlers(): void
    {
    }

    protected function deferQuitSignals(): void
    {
    }

    protected function resumeQuitSignals(): void
    {
    }

    protected function armAlarm(int $seconds): void
    {
        $this->alarms[] = $seconds;
    }

    protected function disarmAlarm(): void
    {
        if ($this->beforeDisarm !== null) {
            ($this->beforeDisarm)();
        }
        $this->alarms[] = 0;
    }

    protected function exitProcess(int $code): void
    {
        $this->exits[] = $code;
    }
}
