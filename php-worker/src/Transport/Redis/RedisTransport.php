<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use Closure;
use Jobgate\Worker\Job;
use Jobgate\Worker\Logger;
use Jobgate\Worker\ProgressRejected;
use Jobgate\Worker\StopRequest;
use Jobgate\Worker\Transport\AckAndNext;
use Jobgate\Worker\Transport\OutcomeRejected;
use Jobgate\Worker\Transport\ProtocolLimits;
use Jobgate\Worker\Transport\ReservationTokens;
use Jobgate\Worker\Transport\Retrier;
use Jobgate\Worker\Transport\RetryOutcome;
use Jobgate\Worker\Transport\Transport;
use Jobgate\Worker\Transport\Unavailable;

/**
 * The worker protocol straight on Redis, through the shared Lua scripts (see PROTOCOL.md).
 */
final class RedisTransport implements Transport
{
    /** The ack's reply status when it succeeded => the job's new state. */
    private const ACK_DONE = ['OK' => 'succeeded'];

    /** @var list<QueueKeys> */
    private readonly array $queues;

    /**
     * The `wait_ms` of the reserve that went with the last ack when it found the first queue
     * empty: the reserve() that follows starts at the second queue instead of asking again.
     */
    private ?int $firstQueueWaitMs = null;

    private readonly ReservationTokens $tokens;

    /**
     * On Redis Cluster, the first queue of this round whose shard did not answer a reserve: the
     * round goes on with the other queues (each lives on its own shard), and ends in that
     * outage's back-off only when none of them had a job.
     */
    private ?Unavailable $shardDown = null;

    /**
     * @param Closure(): float|null $random a uniform number in [0, 1) for the retry jitter
     * @param StopRequest $stop ends an idle wait early once the worker is asked to stop
     */
    public function __construct(
        private readonly Connection $connection,
        private readonly ScriptLibrary $scripts,
        private readonly RedisTransportOptions $options,
        private readonly Retrier $retrier,
        private ?Closure $random = null,
        private readonly StopRequest $stop = new StopRequest(),
    ) {
        $this->queues = array_map(
            static fn (string $queue): QueueKeys => new QueueKeys($options->prefix, $queue),
            $options->queues,
        );
        $this->random ??= static fn (): float => random_int(0, 999_999) / 1_000_000;
        $this->tokens = new ReservationTokens();
    }

    public function name(): string
    {
        return 'redis';
    }

    /**
     * Reserve on each queue in order; when all are empty, block on the wake lists for at most
     * the block time (less when a scheduled job or a lease is due sooner), then reserve once more
     * unless the worker was asked to stop meanwhile. A later queue whose last reserve got no
     * reply is asked first, for the job that reserve may have leased.
     */
    public function reserve(): ?Job
    {
        $firstQueueWaitMs = $this->firstQueueWaitMs;
        $this->firstQueueWaitMs = null;
        $this->shardDown = null;
        try {
            $job = $this->reserveUnanswered();
            if ($job !== null) {
                $this->retrier->recovered();

                return $job;
            }
            [$job, $waitMs] = $firstQueueWaitMs === null
                ? $this->reserveFromQueues()
                : $this->reserveFromQueues(from: 1, waitMs: $firstQueueWaitMs);
            if ($job === null && $this->shardDown !== null) {
                throw $this->shardDown;
            }
            if ($job === null) {
                $wokenBy = $this->waitForWork($this->blockSeconds($waitMs));
                if ($this->stop->isRequested()) {
                    // The token was for a worker that reserves: another idle one may.
                    if ($wokenBy !== null) {
                        $this->connection->pushWake($wokenBy);
                    }

                    return null;
                }
                [$job] = $this->reserveFromQueues();
            }
            $this->retrier->recovered();

            return $job;
        } catch (Unavailable $unavailable) {
            $this->retrier->pause($unavailable);

            return null;
        }
    }

    public function leasedUnanswered(): ?Job
    {
        try {
            return $this->reserveUnanswered(from: 0);
        } catch (Unavailable) {
            return null;
        }
    }

    public function ack(Job $job, ?string $resultJson): bool
    {
        return $this->settle($job, $this->ackCall($job, $resultJson), self::ACK_DONE) !== null;
    }

    /**
     * The ack and a reserve on the first queue in one round trip (Connection::runScripts()).
     *
     * When the connection fails on the way, the ack is sent again the way ack() retries, as a
     * retry: the first one may have landed. No job is returned then; the next reserve() on the
     * first queue goes with the same lease token, so it gets the job this one may have leased.
     * When the first queue was empty, the next reserve() goes on from the second.
     */
    public function ackAndReserve(Job $job, ?string $resultJson): AckAndNext
    {
        $this->firstQueueWaitMs = null;
        if ($resultJson !== null && strlen($resultJson) > ProtocolLimits::RESULT_MAX_BYTES) {
            // Refused by the script: the reserve must not go with it, or its job would wait out a lease.
            return new AckAndNext($this->ack($job, $resultJson), null);
        }
        $ack = $this->ackCall($job, $resultJson);
        $reserve = $this->reserveCall($this->queues[0]);
        try {
            [$ackReply, $reserveReply] = $this->connection->runScripts([$ack, $reserve]);
        } catch (Unavailable $unavailable) {
            return new AckAndNext($this->settle($job, $ack, self::ACK_DONE, $unavailable) !== null, null);
        }
        $this->retrier->recovered();
        $next = $this->reservedJob($this->queues[0], $reserveReply);
        if ($next === null) {
            $this->firstQueueWaitMs = self::waitMsOf($reserveReply);
        }

        return new AckAndNext($this->settledState($ack, $ackReply, self::ACK_DONE) !== null, $next);
    }

    public function fail(Job $job, string $message, string $class): bool
    {
        $keys = $this->keysOf($job);
        $call = new ScriptCall(
            $this->scripts->get('fail'),
            [$keys->job($job->id), $keys->active(), $keys->dead(), $keys->events(), $keys->stats()],
            [
                $job->id,
                $job->leaseToken,
                $message,
                $class,
                (string) $this->options->deadRetentionMs,
                (string) $this->options->eventsMaxLen,
                $keys->stem,
            ],
        );

        return $this->settle($job, $call, ['DEAD' => 'dead']) !== null;
    }

    public function retry(Job $job, string $message, string $class, ?int $delayMs): RetryOutcome
    {
        $keys = $this->keysOf($job);
        $call = new ScriptCall(
            $this->scripts->get('retry'),
            [
                $keys->job($job->id),
                $keys->active(),
                $keys->scheduled(),
                $keys->dead(),
                $keys->wake(),
                $keys->events(),
                $keys->stats(),
            ],
            [
                $job->id,
                $job->leaseToken,
                $message,
                $class,
                (string) ($delayMs === null ? -1 : max(0, $delayMs)),
                sprintf('%.6F', ($this->random)()),
                (string) $this->options->deadRetentionMs,
                (string) $this->options->eventsMaxLen,
                $keys->stem,
                (string) $this->options->jobRetentionMs,
            ],
        );
        $state = $this->settle(
            $job,
            $call,
            ['SCHEDULED' => 'scheduled', 'QUEUED' => 'queued', 'DEAD' => 'dead', 'EXPIRED' => 'expired'],
        );

        return $state === null ? RetryOutcome::LeaseLost : RetryOutcome::fromState($state);
    }

    public function heartbeat(Job $job, int $leaseMs, ?string $progressJson = null): bool
    {
        $keys = $this->keysOf($job);
        try {
            $reply = $this->connection->runScript(
                $this->scripts->get('heartbeat'),
                [$keys->job($job->id), $keys->active()],
                [$job->id, $job->leaseToken, (string) $leaseMs, $progressJson ?? ''],
            );
        } catch (Unavailable $unavailable) {
            $this->retrier->note($unavailable, 'heartbeat', Logger::jobFields($job));

            return true;
        }
        $this->retrier->recovered();

        return match ($reply[0]) {
            'OK' => true,
            'LEASE_LOST', 'NOT_FOUND' => false,
            'PROGRESS_TOO_LARGE' => throw new ProgressRejected(
                "the progress is longer than {$reply[1]} bytes of JSON; it was not recorded",
            ),
            default => throw new ScriptFailed("heartbeat: unexpected reply {$reply[0]}"),
        };
    }

    private function ackCall(Job $job, ?string $resultJson): ScriptCall
    {
        $keys = $this->keysOf($job);

        return new ScriptCall(
            $this->scripts->get('ack'),
            [$keys->job($job->id), $keys->active(), $keys->events(), $keys->stats()],
            [
                $job->id,
                $job->leaseToken,
                $resultJson ?? '',
                (string) $this->options->jobRetentionMs,
                (string) $this->options->eventsMaxLen,
                $keys->stem,
            ],
        );
    }

    /** A reserve on one queue, with the queue's token (the same until a reply brings a job). */
    private function reserveCall(QueueKeys $keys): ScriptCall
    {
        return new ScriptCall(
            $this->scripts->get('reserve'),
            [$keys->active(), $keys->scheduled(), $keys->dead(), $keys->wake(), $keys->events(), $keys->stats()],
            [
                $keys->stem,
                $this->options->workerId,
                $this->tokens->for($keys->queue),
                (string) $this->options->leaseMs,
                (string) $this->options->jobRetentionMs,
                (string) $this->options->deadRetentionMs,
                (string) $this->options->eventsMaxLen,
            ],
        );
    }

    /**
     * Runs a lease-ending script until Redis answers.
     *
     * @param array<string, string> $doneReplies reply status => the job's new state
     * @param Unavailable|null $earlierFailure how a try made elsewhere failed (it may have landed)
     * @return string|null the job's new state; null when the lease was not held
     */
    private function settle(
        Job $job,
        ScriptCall $call,
        array $doneReplies,
        ?Unavailable $earlierFailure = null,
    ): ?string {
        return $this->retrier->untilAvailable(
            fn (): ?string => $this->settledState(
                $call,
                $this->connection->runScript($call->script, $call->keys, $call->args),
                $doneReplies,
            ),
            $earlierFailure,
            Logger::jobFields($job),
        );
    }

    /**
     * What a lease-ending script's reply says.
     *
     * @param array<int, mixed> $reply
     * @param array<string, string> $doneReplies reply status => the job's new state
     * @return string|null the job's new state; null when the lease was not held
     */
    private function settledState(ScriptCall $call, array $reply, array $doneReplies): ?string
    {
        $status = $reply[0];
        if (isset($doneReplies[$status])) {
            return $doneReplies[$status];
        }
        if ($status === 'LEASE_LOST' && in_array($reply[2] ?? null, $doneReplies, true)) {
            // An earlier try of this call ended the lease; its reply was lost.
            return (string) $reply[2];
        }
        if ($status === 'LEASE_LOST' || $status === 'NOT_FOUND') {
            return null;
        }
        if ($status === 'RESULT_TOO_LARGE') {
            throw new OutcomeRejected("the result is longer than {$reply[1]} bytes of JSON");
        }
        throw new ScriptFailed("{$call->script->name}: unexpected reply {$status}");
    }

    /**
     * A reserve on the queue whose last reserve got no reply, among the queues from index $from
     * (reserve() asks the first queue first anyway).
     */
    private function reserveUnanswered(int $from = 1): ?Job
    {
        foreach (array_slice($this->queues, $from) as $keys) {
            if ($keys->queue === $this->tokens->unanswered()) {
                $reply = $this->reserveOn($keys);

                return $reply === null ? null : $this->reservedJob($keys, $reply);
            }
        }

        return null;
    }

    /**
     * One reserve per queue, in priority order from `$from`, until one leases a job.
     *
     * @param int $waitMs the smallest `wait_ms` of the queues before `$from` (-1 = none pending)
     * @return array{0: Job|null, 1: int} the job, and when nothing came the smallest `wait_ms`
     *         of the replies (-1 = nothing pending anywhere)
     */
    private function reserveFromQueues(int $from = 0, int $waitMs = -1): array
    {
        foreach (array_slice($this->queues, $from) as $keys) {
            $reply = $this->reserveOn($keys);
            if ($reply === null) {
                continue;
            }
            $job = $this->reservedJob($keys, $reply);
            if ($job !== null) {
                return [$job, -1];
            }
            $queueWaitMs = self::waitMsOf($reply);
            if ($queueWaitMs >= 0 && ($waitMs < 0 || $queueWaitMs < $waitMs)) {
                $waitMs = $queueWaitMs;
            }
        }

        return [null, $waitMs];
    }

    /**
     * The reply of a reserve on one queue; null on Redis Cluster when the queue's shard does not
     * answer (kept in shardDown), where elsewhere the outage ends the round.
     *
     * @return array<int, mixed>|null
     */
    private function reserveOn(QueueKeys $keys): ?array
    {
        $call = $this->reserveCall($keys);
        try {
            return $this->connection->runScript($call->script, $call->keys, $call->args);
        } catch (Unavailable $unavailable) {
            if (!$this->connection instanceof ClusterConnection) {
                throw $unavailable;
            }
            $this->shardDown ??= $unavailable;

            return null;
        }
    }

    /**
     * An `EMPTY` reply's `wait_ms`: how soon a scheduled job or a lease of that queue is due.
     *
     * @param array<int, mixed> $reply
     */
    private static function waitMsOf(array $reply): int
    {
        return (int) ($reply[1] ?? -1);
    }

    /**
     * What a reserve's reply says: the job leased (the queue's token is then spent), or null for
     * `EMPTY`.
     *
     * @param array<int, mixed> $reply
     */
    private function reservedJob(QueueKeys $keys, array $reply): ?Job
    {
        $job = match ($reply[0]) {
            'JOB' => Job::fromReservation(self::pairs(array_slice($reply, 1))),
            'EMPTY' => null,
            default => throw new ScriptFailed("reserve: unexpected reply {$reply[0]}"),
        };
        $this->tokens->answered($keys->queue, $job !== null);

        return $job;
    }

    /**
     * Up to $seconds, in slices of IDLE_WAIT_SLICE_MS: until a wake-up token arrives or the
     * worker is asked to stop.
     *
     * @return string|null the wake list the token came from; null when none came
     * @throws Unavailable
     */
    private function waitForWork(float $seconds): ?string
    {
        while ($seconds >= 0.001 && !$this->stop->isRequested()) {
            $slice = min($seconds, self::IDLE_WAIT_SLICE_MS / 1000.0);
            $wokenBy = $this->connection->waitForWake($this->wakeKeys(), $slice);
            if ($wokenBy !== null) {
                return $wokenBy;
            }
            $seconds -= $slice;
        }

        return null;
    }

    /** How long to block: the block time, or less when something is due sooner. */
    private function blockSeconds(int $waitMs): float
    {
        $blockMs = $waitMs >= 0 ? min($this->options->blockMs, $waitMs) : $this->options->blockMs;

        return $blockMs / 1000;
    }

    /** @return list<string> */
    private function wakeKeys(): array
    {
        return array_map(static fn (QueueKeys $keys): string => $keys->wake(), $this->queues);
    }

    private function keysOf(Job $job): QueueKeys
    {
        foreach ($this->queues as $keys) {
            if ($keys->queue === $job->queue) {
                return $keys;
            }
        }

        return new QueueKeys($this->options->prefix, $job->queue);
    }

    /**
     * @param array<int, mixed> $flat name, value, name, value…
     * @return array<string, string|int>
     */
    private static function pairs(array $flat): array
    {
        $fields = [];
        for ($i = 0; $i + 1 < count($flat); $i += 2) {
            $fields[(string) $flat[$i]] = is_int($flat[$i + 1]) ? $flat[$i + 1] : (string) $flat[$i + 1];
        }

        return $fields;
    }
}
