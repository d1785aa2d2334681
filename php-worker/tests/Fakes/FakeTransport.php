<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Fakes;

use Closure;
use Jobgate\Worker\Job;
use Jobgate\Worker\Transport\AckAndNext;
use Jobgate\Worker\Transport\OutcomeRejected;
use Jobgate\Worker\Transport\RetryOutcome;
use Jobgate\Worker\Transport\StopRequested;
use Jobgate\Worker\Transport\Transport;

/**
 * Hands out queued jobs and records every call. When no job is left, reserve() calls $onEmpty
 * (e.g. to stop the worker or move the clock) and returns null. ackAndReserve() hands out the
 * next queued job too, unless $leaseWithAck is off.
 */
final class FakeTransport implements Transport
{
    /** @var list<array<int, mixed>> */
    public array $calls = [];
    /** @var list<bool> answers of the next acks (true when exhausted) */
    public array $ackHeld = [];
    public bool $failHeld = true;
    public RetryOutcome $retryOutcome = RetryOutcome::Scheduled;
    /** Thrown by retry() (after recording the call): e.g. the server was down and a stop was requested. */
    public ?\Throwable $retryGivesUp = null;
    public bool $heartbeatHeld = true;
    /** Thrown by heartbeat() (after recording the call). */
    public ?\Throwable $heartbeatError = null;
    /** Thrown by ack() and ackAndReserve() (after recording the call): the server refused the result. */
    public ?OutcomeRejected $ackRejected = null;
    /** Thrown by retry() (after recording the call): the server refused the retry. */
    public ?OutcomeRejected $retryRejected = null;
    public ?Closure $onEmpty = null;
    /** @var (Closure(): void)|null runs inside each heartbeat call */
    public ?Closure $duringHeartbeat = null;
    public bool $leaseWithAck = true;
    /** Called while ackAndReserve() is under way (e.g. a signal arriving then). */
    public ?Closure $duringAckAndReserve = null;
    public ?Closure $duringFail = null;
    /** @var list<Job> what leasedUnanswered() hands out: jobs leased by a reserve whose reply was lost */
    public array $unansweredJobs = [];

    /** @param list<Job> $jobs */
    public function __construct(public array $jobs = [])
    {
    }

    public function name(): string
    {
        return 'fake';
    }

    public function reserve(): ?Job
    {
        $this->calls[] = ['reserve'];
        $job = array_shift($this->jobs);
        if ($job === null && $this->onEmpty !== null) {
            ($this->onEmpty)();
        }

        return $job;
    }

    public function leasedUnanswered(): ?Job
    {
        $job = array_shift($this->unansweredJobs);
        if ($job !== null) {
            $this->calls[] = ['leasedUnanswered', $job->id];
        }

        return $job;
    }

    public function ack(Job $job, ?string $resultJson): bool
    {
        $this->calls[] = ['ack', $job->id, $resultJson];
        if ($this->ackRejected !== null) {
            throw $this->ackRejected;
        }

        return array_shift($this->ackHeld) ?? true;
    }

    public function ackAndReserve(Job $job, ?string $resultJson): AckAndNext
    {
        $this->calls[] = ['ackAndReserve', $job->id, $resultJson];
        if ($this->ackRejected !== null) {
            throw $this->ackRejected;
        }
        if ($this->duringAckAndReserve !== null) {
            ($this->duringAckAndReserve)();
        }

        return new AckAndNext(
            array_shift($this->ackHeld) ?? true,
            $this->leaseWithAck ? array_shift($this->jobs) : null,
        );
    }

    public function fail(Job $job, string $message, string $class): bool
    {
        $this->calls[] = ['fail', $job->id, $message, $class];
        if ($this->duringFail !== null) {
            ($this->duringFail)();
        }

        return $this->failHeld;
    }

    public function retry(Job $job, string $message, string $class, ?int $delayMs): RetryOutcome
    {
        $this->calls[] = ['retry', $job->id, $message, $class, $delayMs];
        if ($this->retryGivesUp !== null) {
            throw $this->retryGivesUp;
        }
        if ($this->retryRejected !== null) {
            throw $this->retryRejected;
        }

        return $this->retryOutcome;
    }

    public function heartbeat(Job $job, int $leaseMs, ?string $progressJson = null): bool
    {
        $this->calls[] = ['heartbeat', $job->id, $leaseMs, $progressJson];
        if ($this->duringHeartbeat !== null) {
            ($this->duringHeartbeat)();
        }
        if ($this->heartbeatError !== null) {
            throw $this->heartbeatError;
        }

        return $this->heartbeatHeld;
    }

    /** @return list<array<int, mixed>> the calls other than reserve */
    public function settlements(): array
    {
        return array_values(array_filter($this->calls, static fn (array $call): bool => $call[0] !== 'reserve'));
    }
}
