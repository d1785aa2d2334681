<?php

declare(strict_types=1);

namespace Jobgate\Worker;

use Closure;
use Jobgate\Worker\Transport\Transport;

/**
 * Given to a handler with its job: report progress, extend the lease, learn whether the lease
 * was lost (another worker may then be running the job: stop as soon as it is safe).
 */
final class JobContext
{
    private bool $leaseLost = false;
    private bool $heartbeating = false;

    /**
     * @param Closure(): void $onLeaseLost called once, when a heartbeat finds the lease gone
     * @param Closure(Closure(): bool): bool $shielded runs each heartbeat call with the worker's
     *        quit signals held back (one arriving as the call fails would be lost)
     * @internal created by the Worker
     */
    public function __construct(
        private readonly Job $job,
        private readonly Transport $transport,
        private readonly int $leaseMs,
        private readonly Closure $onLeaseLost,
        private readonly Closure $shielded,
    ) {
    }

    /**
     * Records progress (any JSON-encodable value) on the job, with a heartbeat.
     *
     * @throws \JsonException when the value cannot be encoded as JSON
     * @throws ProgressRejected when it is too large (over 64 KiB of JSON) or holds an integer past
     *     2^53 that a double cannot hold exactly (send such numbers as strings); nothing is recorded
     */
    public function progress(mixed $progress): void
    {
        $json = Json::encode($progress);
        $inexact = Json::inexactInteger($json);
        if ($inexact !== null) {
            throw new ProgressRejected(Json::inexactIntegerMessage('progress', $inexact));
        }
        $this->extendLease($json);
    }

    /** Extends the lease now. The worker also does so on its own while a job runs long. */
    public function heartbeat(): void
    {
        $this->extendLease(null);
    }

    public function leaseLost(): bool
    {
        return $this->leaseLost;
    }

    /** @internal true while a heartbeat is on the wire (the timer must not send another) */
    public function isHeartbeating(): bool
    {
        return $this->heartbeating;
    }

    private function extendLease(?string $progressJson): void
    {
        if ($this->leaseLost || $this->heartbeating) {
            return;
        }
        $this->heartbeating = true;
        try {
            $held = ($this->shielded)(
                fn (): bool => $this->transport->heartbeat($this->job, $this->leaseMs, $progressJson),
            );
        } finally {
            $this->heartbeating = false;
        }
        if (!$held) {
            $this->leaseLost = true;
            ($this->onLeaseLost)();
        }
    }
}
