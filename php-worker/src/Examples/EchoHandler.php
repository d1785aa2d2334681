<?php

declare(strict_types=1);

namespace Jobgate\Worker\Examples;

use Jobgate\Worker\Handler;
use Jobgate\Worker\Job;
use Jobgate\Worker\JobContext;

/**
 * `echo`: the result is the payload, exactly as submitted.
 */
final class EchoHandler implements Handler
{
    public function handle(Job $job, JobContext $context): mixed
    {
        // Decoded as objects, so an empty {} stays an object in the result.
        return json_decode($job->payloadJson);
    }
}
