<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Fakes;

use Jobgate\Worker\Handler;
use Jobgate\Worker\Job;
use Jobgate\Worker\JobContext;

final class NeedsArguments implements Handler
{
    public function __construct(private readonly string $dsn)
    {
    }

    public function handle(Job $job, JobContext $context): mixed
    {
        return $this->dsn;
    }
}
