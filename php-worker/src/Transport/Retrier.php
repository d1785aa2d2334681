<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport;

use Closure;
use Jobgate\Worker\Clock;
use Jobgate\Worker\Logger;
use Jobgate\Worker\StopRequest;

/**
 * Waits out an unreachable server: logs, sleeps an exponential back-off, lets the caller try
 * again. Shared by both transports. With a StopRequest, a quit signal ends a back-off at once,
 * and a call that has failed twice gives up once the worker was asked to stop.
 */
final class Retrier
{
    /** A server's Retry-After is honoured up to this long, so stop conditions stay responsive. */
    private const MAX_RETRY_AFTER_MS = 30_000;

    /** Tries of one call before a stop request makes it give up (a blip gets one more chance). */
    private const TRIES_BEFORE_STOPPING = 2;

    private bool $outageNoted = false;

    public function __construct(
        private readonly Logger $logger,
        private readonly Clock $clock,
        private readonly string $unavailableMessage,
        private readonly Backoff $backoff = new Backoff(),
        private readonly ?StopRequest $stop = null,
    ) {
    }

    /**
     * Calls $call until the server answers.
     *
     * @template T
     * @param Closure(): T $call
     * @param Unavailable|null $earlierFailure how a try made elsewhere (e.g. in a pipeline) failed:
     *        it is waited out first, and counts as the first try
     * @param array<string, mixed> $fields what the call is for, on each line logged while it waits
     *        (a job's fields, for the report of its outcome)
     * @return T
     * @throws StopRequested when the worker was asked to stop and the call still fails
     */
    public function untilAvailable(Closure $call, ?Unavailable $earlierFailure = null, array $fields = []): mixed
    {
        $failure = $earlierFailure;
        $tries = $earlierFailure === null ? 0 : 1;
        for (;;) {
            if ($failure !== null) {
                if ($tries >= self::TRIES_BEFORE_STOPPING && $this->stop?->isRequested()) {
                    throw new StopRequested($failure);
                }
                $this->pause($failure, $fields);
            }
            $tries++;
            try {
                $result = $call();
                $this->recovered();

                return $result;
            } catch (Unavailable $unavailable) {
                $failure = $unavailable;
            }
        }
    }

    /**
     * Logs the outage and sleeps the next back-off delay.
     *
     * @param array<string, mixed> $fields what the waiting call is for
     */
    public function pause(Unavailable $unavailable, array $fields = []): void
    {
        $delayMs = $this->backoff->nextDelayMs();
        if ($unavailable->retryAfterMs !== null) {
            $delayMs = max($delayMs, min($unavailable->retryAfterMs, self::MAX_RETRY_AFTER_MS));
        }
        $this->logger->warn($this->unavailableMessage, $fields + [
            'error' => $unavailable->getMessage(),
            'retry_in_ms' => $delayMs,
        ]);
        if ($this->stop === null) {
            $this->clock->sleepMs($delayMs);
        } else {
            $this->stop->sleepMs($delayMs);
        }
    }

    /**
     * Logs a best-effort call (a heartbeat) that did not reach the server, once until a call
     * does: nothing waits or tries it again, and a handler reporting progress often would
     * otherwise log each one.
     *
     * @param array<string, mixed> $fields what the call was for (the job's fields)
     */
    public function note(Unavailable $unavailable, string $call, array $fields = []): void
    {
        if ($this->outageNoted) {
            return;
        }
        $this->outageNoted = true;
        $this->logger->warn("{$call} not sent, server unavailable", $fields + ['error' => $unavailable->getMessage()]);
    }

    public function recovered(): void
    {
        $this->backoff->reset();
        $this->outageNoted = false;
    }
}
