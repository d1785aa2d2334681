<?php

declare(strict_types=1);

namespace Jobgate\Worker;

/**
 * One delivery of a job, as reserve leased it to this worker.
 */
final class Job
{
    /**
     * @param array<mixed> $payload the decoded payload object ([] when it was not a JSON object)
     * @param string $payloadJson the payload exactly as stored (JSON text)
     * @param int $attempts this delivery's number, 1-based
     */
    public function __construct(
        public readonly string $id,
        public readonly string $queue,
        public readonly string $type,
        public readonly array $payload,
        public readonly int $attempts,
        public readonly int $maxAttempts,
        public readonly ?int $timeoutMs,
        public readonly ?string $requestId,
        public readonly int $createdAt,
        public readonly int $priority,
        public readonly string $leaseToken,
        public readonly int $leaseDeadline,
        public readonly string $payloadJson = '{}',
        public readonly bool $payloadValid = true,
    ) {
    }

    /**
     * A job from the name/value fields of a reserve reply (empty strings mean "not set").
     *
     * @param array<string, string|int> $fields
     */
    public static function fromReservation(array $fields): self
    {
        $text = static fn (string $name): string => (string) ($fields[$name] ?? '');
        $optionalInt = static fn (string $name): ?int => $text($name) === '' ? null : (int) $text($name);
        $payloadJson = $text('payload') === '' ? '{}' : $text('payload');
        $payload = json_decode($payloadJson, true);
        $payloadValid = is_array($payload) && str_starts_with(ltrim($payloadJson), '{');

        return new self(
            id: $text('id'),
            queue: $text('queue'),
            type: $text('type'),
            payload: $payloadValid ? $payload : [],
            attempts: (int) $text('attempts'),
            maxAttempts: (int) $text('max_attempts'),
            timeoutMs: $optionalInt('timeout_ms'),
            requestId: $text('request_id') === '' ? null : $text('request_id'),
            createdAt: (int) $text('created_at'),
            priority: (int) $text('priority'),
            leaseToken: $text('lease_token'),
            leaseDeadline: (int) $text('lease_deadline'),
            payloadJson: $payloadJson,
            payloadValid: $payloadValid,
        );
    }
}
