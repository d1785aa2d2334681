<?php

declare(strict_types=1);

namespace Jobgate\Worker\Examples;

use Jobgate\Worker\Handler;
use Jobgate\Worker\Job;
use Jobgate\Worker\JobContext;

/**
 * `crash`: the process dies mid-job with no cleanup (SIGKILL to itself), as on an OOM kill or a
 * power cut. The lease runs out and the job is run again, until its attempts are used up.
 */
final class CrashHandler implements Handler
{
    public function handle(Job $job, JobContext $context): mixed
    {
        posix_kill(getmypid(), SIGKILL);
        // SIGKILL is delivered before the call returns; this is never reached.
        return null;
    }
}
