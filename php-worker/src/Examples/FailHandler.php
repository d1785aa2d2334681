<?php

declare(strict_types=1);

namespace Jobgate\Worker\Examples;

use Jobgate\Worker\FailJob;
use Jobgate\Worker\Handler;
use Jobgate\Worker\Job;
use Jobgate\Worker\JobContext;

/**
 * `fail`: gives up for good at once with `payload.reason`: the job is dead after one attempt.
 */
final class FailHandler implements Handler
{
    public function handle(Job $job, JobContext $context): mixed
    {
        $reason = $job->payload['reason'] ?? null;

        throw new FailJob(is_string($reason) && $reason !== '' ? $reason : 'failed on purpose');
    }
}
