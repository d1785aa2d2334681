<?php

declare(strict_types=1);

namespace Jobgate\Worker;

use Closure;
use JsonException;
use Jobgate\Worker\Transport\OutcomeRejected;
use Jobgate\Worker\Transport\RetryOutcome;
use Jobgate\Worker\Transport\StopRequested;
use Jobgate\Worker\Transport\Transport;
use Throwable;

/**
 * The long-running loop: check the stop conditions, reserve a job, run its handler, report.
 *
 * Stop conditions are checked before a job is leased; a job already leased to this worker is
 * always run and reported. A success that the worker will go on after is acked together with the
 * lease of the next job (one round trip); that job runs next, whatever happened meanwhile.
 *
 * Each step is a small protected method so a subclass (or a test) can change one of them.
 * Process-level effects (signals, alarms, exit) live in their own methods for the same reason.
 *
 * One SIGALRM timer serves two purposes while a handler runs: it sends a heartbeat every third of
 * the lease, and it enforces the job's timeout (the job is retried and the process exits 15,
 * since a handler stuck mid-call cannot be unwound safely).
 */
class Worker
{
    /** Alarms tick in whole seconds but the clock counts ms: a tick a hair early still counts. */
    private const TICK_SLACK_MS = 10;
    private const SIGNAL_NAMES = [
        SIGTERM => 'SIGTERM',
        SIGINT => 'SIGINT',
        SIGQUIT => 'SIGQUIT',
        SIGHUP => 'SIGHUP',
        SIGALRM => 'SIGALRM',
    ];

    private bool $timedOut = false;
    private bool $stopLogged = false;
    private int $jobsDone = 0;
    private int $startedAtMs = 0;
    private ?Job $currentJob = null;
    /** The job whose run or report the worker failed in, left unreported: the last log names it. */
    private ?Job $jobOfFailure = null;
    private ?JobContext $currentContext = null;
    private int $currentStartedAtMs = 0;
    /** When the current job's handler returned, threw or timed out; null while it runs. */
    private ?int $currentFinishedAtMs = null;
    /** The current job was already reported (by the timeout): the normal path must not report it. */
    private bool $currentSettled = false;
    /** True while the handler runs: an alarm already on its way when it returns does nothing. */
    private bool $handlerRunning = false;
    /** A failed automatic heartbeat of the current job was logged: the next ones are not. */
    private bool $heartbeatFailureLogged = false;
    /** A job leased together with the previous ack, to run next. */
    private ?Job $prefetchedJob = null;
    /** @var array<int, Closure(): void> the worker's own signal handlers, by signal */
    private array $signalHandlers = [];

    public function __construct(
        protected readonly Transport $transport,
        protected readonly HandlerMap $handlers,
        protected readonly WorkerOptions $options,
        protected readonly Logger $logger,
        protected readonly Clock $clock = new SystemClock(),
        protected readonly MemoryGauge $memory = new SystemMemoryGauge(),
        protected readonly StopRequest $stop = new StopRequest(),
    ) {
    }

    /** Runs until a stop condition; returns the process exit code (see ExitCode). */
    public function run(): int
    {
        try {
            $this->installSignalHandlers();
            $this->startedAtMs = $this->clock->nowMs();
            $this->logger->info('worker started', [
                'queues' => $this->options->queues,
                'transport' => $this->transport->name(),
            ]);
            for (;;) {
                $job = $this->prefetchedJob;
                $this->prefetchedJob = null;
                if ($job === null) {
                    $code = $this->stopCode();
                    $job = $code === null ? $this->nextJob() : $this->leasedUnanswered();
                    if ($code !== null && $job === null) {
                        return $this->stop($code);
                    }
                }
                if ($job !== null) {
                    $this->process($job);
                }
            }
        } catch (Throwable $error) {
            $job = $this->jobOfFailure;
            $this->logger->error('worker failed', [
                ...($job === null ? [] : Logger::jobFields($job)),
                'error' => $error->getMessage(),
                'error_class' => $error::class,
                'at' => $error->getFile() . ':' . $error->getLine(),
                'exit_code' => ExitCode::ERROR,
            ]);

            return ExitCode::ERROR;
        }
    }

    /**
     * Asks the loop to stop once the current job (if any), and a job already leased along with
     * its ack, are finished and reported.
     */
    public function quit(): void
    {
        $this->stop->request();
    }

    /** Jobs this worker ran and reported while still holding their lease. */
    public function jobsDone(): int
    {
        return $this->jobsDone;
    }

    /**
     * The job whose handler is running, if any.
     *
     * @internal for the line logged on a PHP fatal error
     */
    public function currentJob(): ?Job
    {
        return $this->currentJob;
    }

    /**
     * The job in hand that no outcome was reported for yet (a timed-out one was).
     *
     * @internal for the line logged when the process ends during a job
     */
    public function unreportedJob(): ?Job
    {
        return $this->currentSettled ? null : $this->currentJob;
    }

    /**
     * SIGALRM: a heartbeat, or the end of a job that ran past its timeout.
     *
     * @internal public for the signal handler (and tests)
     */
    public function onAlarm(): void
    {
        $job = $this->currentJob;
        $context = $this->currentContext;
        if ($job === null || $context === null || $this->currentSettled || !$this->handlerRunning) {
            return;
        }
        $timeoutMs = $this->timeoutMs($job);
        if ($timeoutMs > 0 && $this->elapsedMs() + self::TICK_SLACK_MS >= $timeoutMs) {
            $this->timeOut($job, $context, $timeoutMs);

            return;
        }
        if (!$context->isHeartbeating()) {
            $this->automaticHeartbeat($job, $context);
        }
        $this->armAlarm($this->secondsUntilNextTick($job));
    }

    /**
     * The one place for every stop condition: an exit code, or null to go on.
     *
     * @param int $jobsAboutToBeDone jobs not counted yet that will be once reported (asked
     *        before an ack that would lease the next job)
     */
    protected function stopCode(int $jobsAboutToBeDone = 0): ?int
    {
        $jobsDone = $this->jobsDone + $jobsAboutToBeDone;

        return match (true) {
            $this->timedOut => ExitCode::JOB_TIMEOUT,
            $this->stop->isRequested() => ExitCode::SIGNAL,
            $this->memoryExceeded() => ExitCode::MEMORY_LIMIT,
            $this->options->maxJobs > 0 && $jobsDone >= $this->options->maxJobs => ExitCode::MAX_JOBS,
            $this->options->maxTimeSeconds > 0
                && $this->clock->nowMs() - $this->startedAtMs >= $this->options->maxTimeSeconds * 1000
                => ExitCode::MAX_TIME,
            default => null,
        };
    }

    protected function memoryExceeded(): bool
    {
        return $this->options->memoryMb > 0
            && $this->memory->usedBytes() >= $this->options->memoryMb * 1024 * 1024;
    }

    /**
     * Extends the lease from the SIGALRM handler. Best effort: an error (other than the lease
     * found lost, which the context handles) would be thrown into the handler at whatever line it
     * is on, so it is logged, once per job, and the job goes on.
     */
    protected function automaticHeartbeat(Job $job, JobContext $context): void
    {
        try {
            $context->heartbeat();
        } catch (Throwable $error) {
            if (!$this->heartbeatFailureLogged) {
                $this->heartbeatFailureLogged = true;
                $this->logger->warn('heartbeat failed', Logger::jobFields($job) + [
                    'error' => $error->getMessage(),
                    'error_class' => $error::class,
                    'next' => 'the job goes on; further failed heartbeats of this job are not logged',
                ]);
            }
        }
    }

    protected function nextJob(): ?Job
    {
        return $this->withQuitSignalsDeferred(fn (): ?Job => $this->transport->reserve());
    }

    /** Before stopping: a job the last reserve may have leased without its reply arriving. */
    protected function leasedUnanswered(): ?Job
    {
        return $this->withQuitSignalsDeferred(fn (): ?Job => $this->transport->leasedUnanswered());
    }

    /**
     * @template T
     * @param Closure(): T $call
     * @return T
     */
    protected function withQuitSignalsDeferred(Closure $call): mixed
    {
        $this->deferQuitSignals();
        try {
            return $call();
        } finally {
            $this->resumeQuitSignals();
        }
    }

    /**
     * As withQuitSignalsDeferred(), for a call a handler makes through its context (a heartbeat,
     * progress): the handler's own signal mask is put back as it was after.
     *
     * @template T
     * @param Closure(): T $call
     * @return T
     */
    protected function withQuitSignalsHeldInHandler(Closure $call): mixed
    {
        $before = [];
        pcntl_sigprocmask(SIG_BLOCK, StopRequest::SIGNALS, $before);
        try {
            return $call();
        } finally {
            $this->takeHeldQuitSignals();
            pcntl_sigprocmask(SIG_SETMASK, $before);
        }
    }

    protected function process(Job $job): void
    {
        $context = new JobContext(
            $job,
            $this->transport,
            $this->options->leaseSeconds * 1000,
            fn () => $this->logger->warn('lease lost', $this->finishFields($job)),
            $this->withQuitSignalsHeldInHandler(...),
        );
        $this->currentJob = $job;
        $this->currentContext = $context;
        $this->currentSettled = false;
        $this->heartbeatFailureLogged = false;
        $this->currentStartedAtMs = $this->clock->nowMs();
        $this->currentFinishedAtMs = null;
        $this->logger->info('job started', Logger::jobFields($job));
        try {
            $outcome = $this->runHandler($job, $context);
            $this->currentFinishedAtMs = $this->clock->nowMs();
            $this->restoreSignalHandlers($job);
            if (!$this->currentSettled && !$context->leaseLost()) {
                $this->report($job, $outcome);
            }
        } catch (Throwable $error) {
            $this->jobOfFailure = $job;

            throw $error;
        } finally {
            $this->currentJob = null;
            $this->currentContext = null;
        }
    }

    /** Runs the job's handler under the timer and tells how it ended. */
    protected function runHandler(Job $job, JobContext $context): Outcome
    {
        if (!$this->handlers->has($job->type)) {
            return Outcome::fail(new ErrorReport(
                "no handler for job type \"{$job->type}\" in this worker",
                'UnknownJobType',
            ));
        }
        if (!$job->payloadValid) {
            return Outcome::fail(new ErrorReport('the payload is not a JSON object', 'InvalidPayload'));
        }
        $this->handlerRunning = true;
        $this->armAlarm($this->secondsUntilNextTick($job));
        // The timer stops as soon as the handler does: what follows (encoding a large result)
        // is not the handler's time, and a timeout then would retry a job that succeeded.
        try {
            $result = $this->handlers->get($job->type)->handle($job, $context);
            $thrown = null;
        } catch (Throwable $thrown) {
            $result = null;
        } finally {
            $this->handlerRunning = false;
            $this->disarmAlarm();
        }

        return $thrown === null ? self::succeeded($result) : self::outcomeOf($thrown);
    }

    private static function succeeded(mixed $result): Outcome
    {
        try {
            $json = $result === null ? null : Json::encode($result);
            $inexact = $json === null ? null : Json::inexactInteger($json);
            if ($inexact !== null) {
                // The job's status would show it rounded, every run alike.
                $message = Json::inexactIntegerMessage('result', $inexact);

                return Outcome::fail(new ErrorReport($message, 'InexactInteger'));
            }

            return Outcome::succeeded($json);
        } catch (JsonException $unencodable) {
            // NAN, a resource, recursion, bytes that are not UTF-8: every run would end the same way.
            $message = 'the result cannot be encoded as JSON: ' . $unencodable->getMessage();

            return Outcome::fail(new ErrorReport($message, JsonException::class));
        } catch (Throwable $thrown) {
            // From the result's own jsonSerialize(): as if the handler had thrown it.
            return self::outcomeOf($thrown);
        }
    }

    /** What a handler's exception asks for: FailJob (or a broken handler) fails, the rest retry. */
    private static function outcomeOf(Throwable $thrown): Outcome
    {
        return match (true) {
            // Named as the worker's other own failures are (UnknownJobType, JobTimeout).
            $thrown instanceof InvalidHandler => Outcome::fail(
                new ErrorReport($thrown->getMessage(), 'InvalidHandler'),
            ),
            $thrown instanceof FailJob => Outcome::fail(ErrorReport::fromThrowable($thrown)),
            $thrown instanceof RetryJob => Outcome::retry(ErrorReport::fromThrowable($thrown), $thrown->delayMs),
            default => Outcome::retry(ErrorReport::fromThrowable($thrown)),
        };
    }

    /**
     * Ends the lease as the outcome says, and logs it. An outcome the server refuses for what the
     * job gave it (a result too large, say) would be refused again by every worker: the job fails.
     */
    protected function report(Job $job, Outcome $outcome): void
    {
        $this->deferQuitSignals();
        try {
            try {
                $this->send($job, $outcome);
            } catch (OutcomeRejected $rejected) {
                $outcome = Outcome::fail(new ErrorReport($rejected->getMessage(), 'OutcomeRejected'));
                $this->send($job, $outcome);
            }
        } catch (StopRequested $unrecorded) {
            $this->unrecorded($job, $outcome->kind, $unrecorded);
        } finally {
            $this->resumeQuitSignals();
        }
    }

    /** @throws OutcomeRejected|StopRequested */
    protected function send(Job $job, Outcome $outcome): void
    {
        $error = $outcome->error ?? new ErrorReport('no error given', 'Error');
        match ($outcome->kind) {
            Outcome::SUCCEEDED => $this->reportSuccess($job, $outcome->resultJson),
            Outcome::FAIL => $this->reportFailure($job, $error),
            default => $this->reportRetry($job, $error, $outcome->delayMs),
        };
    }

    /** The outcome could not be reported (asked to stop while the server was down, or the report failed inside the timeout): the job runs again. */
    protected function unrecorded(Job $job, string $outcome, Throwable $reason): void
    {
        $this->logger->warn('job outcome not recorded', $this->finishFields($job) + [
            'outcome' => $outcome,
            'error' => $reason->getMessage(),
            'next' => 'the job runs again when its lease runs out',
        ]);
    }

    protected function reportSuccess(Job $job, ?string $resultJson): void
    {
        $this->settled($job, $this->acknowledge($job, $resultJson), 'info', 'job succeeded');
    }

    /**
     * Acks the job; when the worker will go on after it, leases the next job in the same round
     * trip and keeps it to run next.
     *
     * @return bool whether the lease was still held
     */
    protected function acknowledge(Job $job, ?string $resultJson): bool
    {
        if ($this->stopCode(jobsAboutToBeDone: 1) !== null) {
            return $this->transport->ack($job, $resultJson);
        }
        $acked = $this->transport->ackAndReserve($job, $resultJson);
        $this->prefetchedJob = $acked->next;

        return $acked->leaseHeld;
    }

    protected function reportFailure(Job $job, ErrorReport $error): void
    {
        $held = $this->transport->fail($job, $error->message, $error->class);
        $this->settled($job, $held, 'error', 'job failed', self::errorFields($error));
    }

    protected function reportRetry(Job $job, ErrorReport $error, ?int $delayMs): void
    {
        $retried = $this->transport->retry($job, $error->message, $error->class, $delayMs);
        $fields = self::errorFields($error);
        if ($retried === RetryOutcome::Dead) {
            $this->settled($job, true, 'error', 'job dead', $fields);

            return;
        }
        if ($retried === RetryOutcome::Expired) {
            $this->settled($job, true, 'warn', 'job expired: its TTL ends before a retry', $fields);

            return;
        }
        $fields['state'] = $retried->value;
        if ($delayMs !== null) {
            $fields['delay_ms'] = $delayMs;
        }
        $this->settled($job, $retried->leaseHeld(), 'warn', 'job retried', $fields);
    }

    /**
     * The job ran past its timeout: retry it and end the process, since the handler cannot be
     * unwound from here. Runs inside the SIGALRM handler.
     */
    protected function timeOut(Job $job, JobContext $context, int $timeoutMs): void
    {
        $this->currentSettled = true;
        $this->currentFinishedAtMs = $this->clock->nowMs();
        $error = new ErrorReport(self::timeoutMessage($timeoutMs), 'JobTimeout');
        $this->logger->error('job timed out', $this->finishFields($job) + self::errorFields($error));
        if (!$context->leaseLost()) {
            try {
                $this->reportRetry($job, $error, null);
            } catch (Throwable $unrecorded) {
                // Whatever went wrong, the process ends: the handler cannot be unwound from here.
                $this->unrecorded($job, Outcome::RETRY, $unrecorded);
            }
        }
        $this->timedOut = true;
        $this->exitProcess($this->stop(ExitCode::JOB_TIMEOUT));
    }

    /**
     * The alarm rings on whole seconds: a timeout of 1.5 s stops a job after 2. The message says
     * so rather than claim a limit the job did not get.
     */
    private static function timeoutMessage(int $timeoutMs): string
    {
        $limit = self::seconds($timeoutMs);
        if ($timeoutMs % 1000 === 0) {
            return "timed out after {$limit} s";
        }
        $applied = intdiv($timeoutMs + 999, 1000);

        return "timed out after {$applied} s (timeout {$limit} s, rounded up to whole seconds)";
    }

    /** Logs `worker stopping` (once) and returns the exit code. */
    protected function stop(int $code): int
    {
        if (!$this->stopLogged) {
            $this->stopLogged = true;
            $this->logger->info('worker stopping', ['reason' => ExitCode::reason($code), 'exit_code' => $code]);
        }

        return $code;
    }

    /** Seconds until the next tick: the heartbeat interval, or sooner when the timeout comes first. */
    protected function secondsUntilNextTick(Job $job): int
    {
        $seconds = $this->options->heartbeatIntervalSeconds();
        $timeoutMs = $this->timeoutMs($job);
        if ($timeoutMs > 0) {
            $seconds = min($seconds, (int) ceil(($timeoutMs - $this->elapsedMs()) / 1000));
        }

        return max(1, $seconds);
    }

    protected function installSignalHandlers(): void
    {
        pcntl_async_signals(true);
        foreach (StopRequest::SIGNALS as $signal) {
            $this->signalHandlers[$signal] = function (): void {
                $this->quit();
            };
        }
        $this->signalHandlers[SIGALRM] = function (): void {
            $this->onAlarm();
        };
        foreach ($this->signalHandlers as $signal => $handler) {
            pcntl_signal($signal, $handler);
        }
    }

    /**
     * A handler that set a signal's handler of its own (or ignored the signal), blocked it or
     * turned asynchronous signals off would take the timeouts, heartbeats or stops of every
     * later job away from the worker: it gets its own back. Nothing is held back on purpose
     * here (between the handler and the report); a signal that waited is delivered now.
     */
    protected function restoreSignalHandlers(Job $job): void
    {
        $restored = fn (int|string $signal, string $error) => $this->logger->warn(
            'signal handler restored',
            Logger::jobFields($job) + ['signal' => self::SIGNAL_NAMES[$signal] ?? $signal, 'error' => $error],
        );
        foreach ($this->signalHandlers as $signal => $handler) {
            if (pcntl_signal_get_handler($signal) !== $handler) {
                pcntl_signal($signal, $handler);
                $restored($signal, 'the handler replaced the worker\'s handler of this signal; its own was put back');
            }
        }
        if ($this->signalHandlers !== [] && !pcntl_async_signals()) {
            pcntl_async_signals(true);
            $restored('all', 'the handler turned asynchronous signals off; they were turned back on');
        }
        $blocked = [];
        pcntl_sigprocmask(SIG_BLOCK, [], $blocked);
        $held = array_values(array_intersect(array_keys($this->signalHandlers), $blocked));
        if ($held !== []) {
            pcntl_sigprocmask(SIG_UNBLOCK, $held);
            foreach ($held as $signal) {
                $restored($signal, 'the handler blocked this signal; it was unblocked');
            }
        }
        // A signal that came while asynchronous signals were off waits for a dispatch: turning
        // them on again does not run its handler.
        pcntl_signal_dispatch();
    }

    /**
     * Holds the quit signals (StopRequest::SIGNALS) back while the worker talks to Redis or the gateway. PHP drops
     * a signal whose handler would run while an exception is in flight, and a connection error
     * raised just as the signal arrives (a supervisor stopping Redis and the worker together)
     * is exactly that: held back, the signal waits in the kernel for resumeQuitSignals().
     */
    protected function deferQuitSignals(): void
    {
        pcntl_sigprocmask(SIG_BLOCK, StopRequest::SIGNALS);
    }

    protected function resumeQuitSignals(): void
    {
        $this->takeHeldQuitSignals();
        pcntl_sigprocmask(SIG_UNBLOCK, StopRequest::SIGNALS);
    }

    /** A quit signal that came while they were held back asks the loop to stop. */
    private function takeHeldQuitSignals(): void
    {
        $info = [];
        while (pcntl_sigtimedwait(StopRequest::SIGNALS, $info, 0, 0) > 0) {
            $this->quit();
        }
    }

    protected function armAlarm(int $seconds): void
    {
        pcntl_alarm($seconds);
    }

    protected function disarmAlarm(): void
    {
        pcntl_alarm(0);
    }

    /** Ends the process at once (a job timed out). Tests override it. */
    protected function exitProcess(int $code): void
    {
        exit($code);
    }

    /** The job's own timeout, else the worker's; 0 = none. */
    private function timeoutMs(Job $job): int
    {
        return $job->timeoutMs !== null && $job->timeoutMs > 0
            ? $job->timeoutMs
            : $this->options->timeoutSeconds * 1000;
    }

    private function elapsedMs(): int
    {
        return $this->clock->nowMs() - $this->currentStartedAtMs;
    }

    /** @param array<string, mixed> $fields */
    private function settled(Job $job, bool $leaseHeld, string $level, string $msg, array $fields = []): void
    {
        if (!$leaseHeld) {
            $this->logger->warn('lease lost', $this->finishFields($job));

            return;
        }
        $this->jobsDone++;
        $this->logger->{$level}($msg, $this->finishFields($job) + $fields);
    }

    /**
     * The job's fields and how long its handler ran (not the time its report then took: an ack
     * that waits out a rate limit, say).
     *
     * @return array<string, mixed>
     */
    private function finishFields(Job $job): array
    {
        $endMs = $this->currentFinishedAtMs ?? $this->clock->nowMs();

        return Logger::jobFields($job) + ['duration_ms' => $endMs - $this->currentStartedAtMs];
    }

    /** @return array{error: string, error_class: string} */
    private static function errorFields(ErrorReport $error): array
    {
        return ['error' => $error->message, 'error_class' => $error->class];
    }

    private static function seconds(int $ms): string
    {
        return $ms % 1000 === 0 ? (string) intdiv($ms, 1000) : rtrim(rtrim(sprintf('%.3F', $ms / 1000), '0'), '.');
    }
}
