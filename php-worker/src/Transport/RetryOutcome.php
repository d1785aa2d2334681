<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport;

/**
 * What a retry did with the job.
 */
enum RetryOutcome: string
{
    /** Runs again after its back-off. */
    case Scheduled = 'scheduled';
    /** Runs again now (a delay of 0). */
    case Queued = 'queued';
    /** That was the last attempt. */
    case Dead = 'dead';
    /** Attempts remain, but the job's TTL ends before it would run again. */
    case Expired = 'expired';
    /** The worker no longer held the lease: nothing was changed. */
    case LeaseLost = 'lease_lost';

    public function leaseHeld(): bool
    {
        return $this !== self::LeaseLost;
    }

    /** The outcome for a job state reported by the server, null for a state a retry never leaves. */
    public static function fromState(string $state): ?self
    {
        return match ($state) {
            'scheduled' => self::Scheduled,
            'queued' => self::Queued,
            'dead' => self::Dead,
            'expired' => self::Expired,
            default => null,
        };
    }
}
