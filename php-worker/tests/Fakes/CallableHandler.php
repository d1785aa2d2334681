<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Fakes;

use Closure;
use Jobgate\Worker\Handler;
use Jobgate\Worker\Job;
use Jobgate\Worker\JobContext;

final class CallableHandler implements Handler
{
    /** @var list<string> ids of the jobs handled */
    public array $handled = [];

    /** @param Closure(Job, JobContext): mixed $body */
    public function __construct(private readonly Closure $body)
    {
    }

    public function handle(Job $job, JobContext $context): mixed
    {
        $this->handled[] = $job->id;

        return ($this->body)($job, $context);
    }
}
