<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use Closure;
use Jobgate\Worker\Job;
use Jobgate\Worker\Transport\Retrier;
use Jobgate\Worker\Transport\RetryOutcome;
use Jobgate\Worker\Transport\Transport;
use Jobgate\Worker\Transport\Unavailable;

/**
 * The worker protocol straight on Redis, through the shared Lua scripts (see PROTOCOL.md).
 */
final class RedisTransport implements Transport
{
    /** @var list<QueueKeys> */
    private readonly array $queues;

    /**
     * @param Closure(): float|null $random a uniform number in [0, 1) for the retry jitter
     */
    public function __construct(
        private readonly Connection $connection,
        private readonly ScriptLibrary $scripts,
        private readonly RedisTransportOptions $options,
        private readonly Retrier $retrier,
        private ?Closure $random = null,
    ) {
        $this->queues = array_map(
            static fn (string $queue): QueueKeys => new QueueKeys($options->prefix, $queue),
            $options->queues,
        );
        $this->random ??= static fn (): float => random_int(0, 999_999) / 1_000_000;
    }

    public function name(): string
    {
        return 'redis';
    }

    /**
     * Reserve on each queue in order; when all are empty, block on the wake lists for at most
     * the block time (less when a scheduled job or a lease is due sooner), then reserve once more.
     */
    public function reserve(): ?Job
    {
        try {
            [$job, $waitMs] = $this->reserveFromQueues();
            if ($job === null) {
                $this->connection->waitForWake($this->wakeKeys(), $this->blockSeconds($waitMs));
                [$job] = $this->reserveFromQueues();
            }
            $this->retrier->recovered();

            return $job;
        } catch (Unavailable $unavailable) {
            $this->retrier->pause($unavailable);

            return null;
        }
    }

    public function ack(Job $job, ?string $resultJson): bool
    {
        $keys = $this->keysOf($job);

        return $this->settle(
            'ack',
            [$keys->job($job->id), $keys->active(), $keys->events(), $keys->stats()],
            [
                $job->id,
                $job->leaseToken,
                $resultJson ?? '',
                (string) $this->options->jobRetentionMs,
                (string) $this->options->eventsMaxLen,
                $keys->stem,
            ],
            ['OK' => 'succeeded'],
        ) !== null;
    }

    public function fail(Job $job, string $message, string $class): bool
    {
        $keys = $this->keysOf($job);

        return $this->settle(
            'fail',
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
            ['DEAD' => 'dead'],
        ) !== null;
    }

    public function retry(Job $job, string $message, string $class, ?int $delayMs): RetryOutcome
    {
        $keys = $this->keysOf($job);
        $state = $this->settle(
            'retry',
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
            ],
            ['SCHEDULED' => 'scheduled', 'QUEUED' => 'queued', 'DEAD' => 'dead'],
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
            $this->retrier->note($unavailable);

            return true;
        }
        $this->retrier->recovered();

        return match ($reply[0]) {
            'OK' => true,
            'LEASE_LOST', 'NOT_FOUND' => false,
            default => throw new ScriptFailed("heartbeat: unexpected reply {$reply[0]}"),
        };
    }

    /**
     * Runs a lease-ending script until Redis answers.
     *
     * @param list<string> $keys
     * @param list<string> $args
     * @param array<string, string> $doneReplies reply status => the job's new state
     * @return string|null the job's new state; null when the lease was not held
     */
    private function settle(string $script, array $keys, array $args, array $doneReplies): ?string
    {
        return $this->retrier->untilAvailable(function (bool $isRetry) use ($script, $keys, $args, $doneReplies) {
            $reply = $this->connection->runScript($this->scripts->get($script), $keys, $args);
            $status = $reply[0];
            if (isset($doneReplies[$status])) {
                return $doneReplies[$status];
            }
            if ($status === 'LEASE_LOST' && $isRetry && in_array($reply[1] ?? '', $doneReplies, true)) {
                // The earlier try reached Redis but its reply was lost: the job is where we put it.
                return (string) $reply[1];
            }
            if ($status === 'LEASE_LOST' || $status === 'NOT_FOUND') {
                return null;
            }
            throw new ScriptFailed("{$script}: unexpected reply {$status}");
        });
    }

    /**
     * One reserve per queue, in priority order, until one leases a job.
     *
     * @return array{0: Job|null, 1: int} the job, and when nothing came the smallest `wait_ms`
     *         of the replies (-1 = nothing pending anywhere)
     */
    private function reserveFromQueues(): array
    {
        $waitMs = -1;
        foreach ($this->queues as $keys) {
            $reply = $this->connection->runScript(
                $this->scripts->get('reserve'),
                [$keys->active(), $keys->scheduled(), $keys->dead(), $keys->wake(), $keys->events(), $keys->stats()],
                [
                    $keys->stem,
                    $this->options->workerId,
                    bin2hex(random_bytes(16)),
                    (string) $this->options->leaseMs,
                    (string) $this->options->jobRetentionMs,
                    (string) $this->options->deadRetentionMs,
                    (string) $this->options->eventsMaxLen,
                ],
            );
            if ($reply[0] === 'JOB') {
                return [Job::fromReservation(self::pairs(array_slice($reply, 1))), -1];
            }
            if ($reply[0] !== 'EMPTY') {
                throw new ScriptFailed("reserve: unexpected reply {$reply[0]}");
            }
            $queueWaitMs = (int) ($reply[1] ?? -1);
            if ($queueWaitMs >= 0 && ($waitMs < 0 || $queueWaitMs < $waitMs)) {
                $waitMs = $queueWaitMs;
            }
        }

        return [null, $waitMs];
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
