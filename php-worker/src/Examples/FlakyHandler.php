<?php

declare(strict_types=1);

namespace Jobgate\Worker\Examples;

use Jobgate\Worker\Handler;
use Jobgate\Worker\Job;
use Jobgate\Worker\JobContext;
use RuntimeException;

/**
 * `flaky`: throws until the attempt `payload.succeed_on` (default 2), then returns
 * `{"attempt": n}`. Shows retries with back-off.
 */
final class FlakyHandler implements Handler
{
    public function handle(Job $job, JobContext $context): mixed
    {
        $succeedOn = (int) ($job->payload['succeed_on'] ?? 2);
        if ($job->attempts < $succeedOn) {
            throw new RuntimeException(
                "flaky: failing on attempt {$job->attempts} (succeeds on attempt {$succeedOn})",
            );
        }

        return ['attempt' => $job->attempts];
    }
}
