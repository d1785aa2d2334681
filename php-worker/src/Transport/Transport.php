<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport;

use Jobgate\Worker\Job;
use Jobgate\Worker\ProgressRejected;

/**
 * How a worker takes jobs and reports on them: Redis (the Lua scripts) or the gateway (HTTP).
 *
 * The lease operations report whether the worker still held the lease: false when the job was
 * reclaimed, re-leased, finished by another worker or removed; then nothing was changed.
 * An unreachable server is the transport's own business: it reconnects with back-off and never
 * drops an ack, fail or retry.
 */
interface Transport
{
    /**
     * The longest single wait of an idle reserve (one BLPOP, one long poll): quit signals are
     * held back while the worker talks to its server and PHP runs a handler only once a call
     * returns, so an idle worker notices SIGTERM within this, whatever its block time.
     */
    public const IDLE_WAIT_SLICE_MS = 1000;

    /** A short name for the logs: `redis` or `http`. */
    public function name(): string;

    /**
     * Leases the next job of the worker's queues (in priority order), waiting up to the block
     * time for one, in slices of IDLE_WAIT_SLICE_MS; a stop request ends the wait. Null when
     * none came (or the server is unreachable), so the caller can check its stop conditions
     * before asking again.
     */
    public function reserve(): ?Job;

    /**
     * For a worker about to stop: when its last reserve got no reply (the connection failed on
     * the way back), sends that reserve once more with the same lease token, without waiting,
     * so the job it may have leased is run and reported rather than left to wait out a lease
     * nobody holds. (Had the first try never arrived, this one may lease a job afresh.) Null
     * when no reserve is unanswered, nothing came, or the server is still unreachable.
     */
    public function leasedUnanswered(): ?Job;

    /**
     * @param string|null $resultJson JSON text of the handler's result; null = no result
     * @throws OutcomeRejected when the server refuses the result itself (e.g. too large)
     */
    public function ack(Job $job, ?string $resultJson): bool;

    /**
     * Acks like ack() (an unreachable server is waited out the same way) and may also lease the
     * next job of the worker's first queue, without waiting for one. Only the first queue is
     * asked, so the queues' priority order holds; with no job leased, the caller reserves as usual.
     *
     * @param string|null $resultJson JSON text of the handler's result; null = no result
     * @throws OutcomeRejected as ack() (nothing is leased then)
     */
    public function ackAndReserve(Job $job, ?string $resultJson): AckAndNext;

    /**
     * @throws OutcomeRejected when the server refuses the report even with its message cut short
     *         (over HTTP, a gateway whose body limit is below a short report's size)
     */
    public function fail(Job $job, string $message, string $class): bool;

    /**
     * @param int|null $delayMs null = the job's back-off policy
     * @throws OutcomeRejected when the server refuses the retry itself (e.g. the delay)
     */
    public function retry(Job $job, string $message, string $class, ?int $delayMs): RetryOutcome;

    /**
     * Extends the lease to $leaseMs from now. Best effort: one try, an unreachable server counts
     * as "still held" (the next heartbeat or the settlement will tell).
     *
     * @param string|null $progressJson JSON text of the progress; null = unchanged
     * @throws ProgressRejected when the server refuses the progress for its size (nothing changed)
     */
    public function heartbeat(Job $job, int $leaseMs, ?string $progressJson = null): bool;
}
