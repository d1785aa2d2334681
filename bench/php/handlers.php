<?php

/**
 * The benchmark's handler map: `noop` does nothing, so a run measures the worker and the
 * protocol, not the work.
 */

declare(strict_types=1);

use Jobgate\Worker\Handler;
use Jobgate\Worker\Job;
use Jobgate\Worker\JobContext;

return [
    'noop' => new class implements Handler {
        public function handle(Job $job, JobContext $context): mixed
        {
            return null;
        }
    },
];
