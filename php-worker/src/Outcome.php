<?php

declare(strict_types=1);

namespace Jobgate\Worker;

/**
 * How a handler run ended, and so what the worker reports: ack, fail or retry.
 */
final class Outcome
{
    public const SUCCEEDED = 'succeeded';
    public const FAIL = 'fail';
    public const RETRY = 'retry';

    private function __construct(
        public readonly string $kind,
        /** JSON text of the handler's result; null = none */
        public readonly ?string $resultJson = null,
        public readonly ?ErrorReport $error = null,
        public readonly ?int $delayMs = null,
    ) {
    }

    public static function succeeded(?string $resultJson): self
    {
        return new self(self::SUCCEEDED, $resultJson);
    }

    public static function fail(ErrorReport $error): self
    {
        return new self(self::FAIL, error: $error);
    }

    /** @param int|null $delayMs null = the job's back-off */
    public static function retry(ErrorReport $error, ?int $delayMs = null): self
    {
        return new self(self::RETRY, error: $error, delayMs: $delayMs);
    }
}
