<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Fakes;

use Jobgate\Worker\Job;

final class Jobs
{
    /** @param array<string, mixed> $payload */
    public static function make(
        string $type = 'echo',
        array $payload = [],
        string $id = 'job-1',
        int $attempts = 1,
        ?int $timeoutMs = null,
        string $queue = 'q',
    ): Job {
        $payloadJson = json_encode((object) $payload, JSON_THROW_ON_ERROR);

        return new Job(
            id: $id,
            queue: $queue,
            type: $type,
            payload: $payload,
            attempts: $attempts,
            maxAttempts: 3,
            timeoutMs: $timeoutMs,
            requestId: 'req-' . $id,
            createdAt: 1_700_000_000_000,
            priority: 5,
            leaseToken: 'token-' . $id,
            leaseDeadline: 1_700_000_030_000,
            payloadJson: $payloadJson,
        );
    }
}
