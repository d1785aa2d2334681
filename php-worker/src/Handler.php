<?php

declare(strict_types=1);

namespace Jobgate\Worker;

/**
 * Runs the jobs of one type. Register an implementation by job type in the handlers file.
 *
 * Return the job's result (JSON-encoded into the ack; null = no result). Throw FailJob to give
 * up for good, RetryJob to run again after a chosen delay; any other exception retries the job
 * with its back-off.
 */
interface Handler
{
    public function handle(Job $job, JobContext $context): mixed;
}
