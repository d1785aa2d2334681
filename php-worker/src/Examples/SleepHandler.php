<?php

declare(strict_types=1);

namespace Jobgate\Worker\Examples;

use Jobgate\Worker\Handler;
use Jobgate\Worker\Job;
use Jobgate\Worker\JobContext;

/**
 * `sleep`: waits `payload.ms` milliseconds of wall time, then returns `{"slept_ms": n}`.
 */
final class SleepHandler implements Handler
{
    public function handle(Job $job, JobContext $context): mixed
    {
        $ms = max(0, (int) ($job->payload['ms'] ?? 1000));
        $until = hrtime(true) + $ms * 1_000_000;
        // The worker's SIGALRM (heartbeats) cuts a long usleep short: sleep in short steps.
        while (($left = $until - hrtime(true)) > 0) {
            usleep((int) min(100_000, intdiv($left, 1000) + 1));
        }

        return ['slept_ms' => $ms];
    }
}
