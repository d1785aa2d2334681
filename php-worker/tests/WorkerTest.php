<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests;

use Closure;
use Jobgate\Worker\ExitCode;
use Jobgate\Worker\FailJob;
use Jobgate\Worker\HandlerMap;
use Jobgate\Worker\InvalidHandler;
use Jobgate\Worker\Job;
use Jobgate\Worker\JobContext;
use Jobgate\Worker\ProgressRejected;
use Jobgate\Worker\RetryJob;
use Jobgate\Worker\Tests\Fakes\CallableHandler;
use Jobgate\Worker\Tests\Fakes\FakeClock;
use Jobgate\Worker\Tests\Fakes\FakeMemoryGauge;
use Jobgate\Worker\Tests\Fakes\FakeTransport;
use Jobgate\Worker\Tests\Fakes\Jobs;
use Jobgate\Worker\Tests\Fakes\LogLines;
use Jobgate\Worker\Tests\Fakes\TestableWorker;
use Jobgate\Worker\Transport\Http\GatewayError;
use Jobgate\Worker\Transport\OutcomeRejected;
use Jobgate\Worker\Transport\Redis\ScriptFailed;
use Jobgate\Worker\Transport\RetryOutcome;
use Jobgate\Worker\Transport\StopRequested;
use Jobgate\Worker\Transport\Unavailable;
use Jobgate\Worker\WorkerOptions;
use LogicException;
use PHPUnit\Framework\TestCase;
use RuntimeException;

final class WorkerTest extends TestCase
{
    private FakeTransport $transport;
    private FakeClock $clock;
    private FakeMemoryGauge $memory;
    private LogLines $logs;
    private ?TestableWorker $worker = null;

    protected function setUp(): void
    {
        $this->transport = new FakeTransport();
        $this->clock = new FakeClock();
        $this->memory = new FakeMemoryGauge();
        $this->logs = new LogLines();
    }

    public function testAcksWithTheHandlersResultAsJson(): void
    {
        $this->transport->jobs = [Jobs::make('echo', ['to' => 'ada@example.com'])];
        $handler = fn (Job $job) => ['sent_to' => $job->payload['to'], 'ok' => true];
        $code = $this->runWorker(['echo' => $handler], maxJobs: 1);

        self::assertSame(ExitCode::MAX_JOBS, $code);
        self::assertSame(
            [['ack', 'job-1', '{"sent_to":"ada@example.com","ok":true}']],
            $this->transport->settlements(),
        );
        self::assertSame(
            ['worker started', 'job started', 'job succeeded', 'worker stopping'],
            $this->logs->messages(),
        );
        $succeeded = $this->logs->first('job succeeded');
        self::assertSame('job-1', $succeeded['job_id']);
        self::assertSame('req-job-1', $succeeded['request_id']);
        self::assertArrayHasKey('duration_ms', $succeeded);
        self::assertSame(['reason' => 'max_jobs', 'exit_code' => 13], $this->stoppingFields());
    }

    public function testDurationIsTheHandlersRunTimeNotTheReportsWait(): void
    {
        $this->transport->jobs = [Jobs::make('slow', id: 'a'), Jobs::make('slow', id: 'b')];
        $this->transport->duringAckAndReserve = fn () => $this->clock->advance(5000);
        $this->runWorker(['slow' => fn () => $this->clock->advance(40)], maxJobs: 2);

        self::assertSame(40, $this->logs->first('job succeeded')['duration_ms'], 'the ack waited 5 s on top');
    }

    public function testAJobNoHandlerRanForTakesNoTimeWhateverItsReportWaits(): void
    {
        $this->transport->jobs = [Jobs::make('unknown')];
        $this->transport->duringFail = fn () => $this->clock->advance(5000);
        $this->runWorker(['echo' => fn () => null], maxJobs: 1);

        self::assertSame(0, $this->logs->first('job failed')['duration_ms']);
    }

    public function testANullResultAcksWithoutAResult(): void
    {
        $this->transport->jobs = [Jobs::make('noop')];
        $this->runWorker(['noop' => fn () => null], maxJobs: 1);

        self::assertSame([['ack', 'job-1', null]], $this->transport->settlements());
    }

    public function testAnyExceptionRetriesWithTheJobsBackoff(): void
    {
        $this->transport->jobs = [Jobs::make('boom')];
        $this->runWorker(['boom' => fn () => throw new RuntimeException('SMTP said no')], maxJobs: 1);

        self::assertSame(
            [['retry', 'job-1', 'SMTP said no', RuntimeException::class, null]],
            $this->transport->settlements(),
        );
        $retried = $this->logs->first('job retried');
        self::assertSame('warn', $retried['level']);
        self::assertSame('SMTP said no', $retried['error']);
        self::assertSame(RuntimeException::class, $retried['error_class']);
    }

    public function testRetryJobAsksForItsOwnDelay(): void
    {
        $this->transport->jobs = [Jobs::make('later')];
        $this->runWorker(['later' => fn () => throw new RetryJob('rate limited', 250)], maxJobs: 1);

        self::assertSame(
            [['retry', 'job-1', 'rate limited', RetryJob::class, 250]],
            $this->transport->settlements(),
        );
        self::assertSame(250, $this->logs->first('job retried')['delay_ms']);
    }

    public function testARetryDelayIsCutToTheLongestTheGatewayAccepts(): void
    {
        $this->transport->jobs = [Jobs::make('later')];
        $this->runWorker(['later' => fn () => throw new RetryJob('see you', PHP_INT_MAX)], maxJobs: 1);

        self::assertSame(
            [['retry', 'job-1', 'see you', RetryJob::class, 31_536_000_000]],
            $this->transport->settlements(),
        );
    }

    public function testAResultTheServerRefusesFailsTheJobAndTheWorkerGoesOn(): void
    {
        $this->transport->jobs = [Jobs::make('big'), Jobs::make('big', id: 'job-2')];
        $this->transport->leaseWithAck = false;
        $this->transport->ackRejected = new OutcomeRejected(
            'the gateway refused the ack: 413 PAYLOAD_TOO_LARGE: Request body is too large',
        );
        $code = $this->runWorker(['big' => fn () => str_repeat('x', 100)]);

        self::assertSame(ExitCode::SIGNAL, $code, 'stopped by the fake running dry, not by an error');
        $refused = 'the gateway refused the ack: 413 PAYLOAD_TOO_LARGE: Request body is too large';
        self::assertSame(
            [
                ['ackAndReserve', 'job-1', '"' . str_repeat('x', 100) . '"'],
                ['fail', 'job-1', $refused, 'OutcomeRejected'],
                ['ackAndReserve', 'job-2', '"' . str_repeat('x', 100) . '"'],
                ['fail', 'job-2', $refused, 'OutcomeRejected'],
            ],
            $this->transport->settlements(),
        );
        $failed = $this->logs->first('job failed');
        self::assertSame('job-1', $failed['job_id']);
        self::assertSame('OutcomeRejected', $failed['error_class']);
        self::assertSame(2, $this->worker?->jobsDone());
    }

    public function testARetryTheServerRefusesFailsTheJob(): void
    {
        $this->transport->jobs = [Jobs::make('later')];
        $this->transport->retryRejected = new OutcomeRejected(
            'the gateway refused the retry: 400 VALIDATION_FAILED: x',
        );
        $code = $this->runWorker(['later' => fn () => throw new RetryJob('not yet', 5)]);

        self::assertSame(ExitCode::SIGNAL, $code);
        self::assertSame(
            [
                ['retry', 'job-1', 'not yet', RetryJob::class, 5],
                ['fail', 'job-1', 'the gateway refused the retry: 400 VALIDATION_FAILED: x', 'OutcomeRejected'],
            ],
            $this->transport->settlements(),
        );
    }

    public function testFailJobFailsForGood(): void
    {
        $this->transport->jobs = [Jobs::make('doomed')];
        $this->runWorker(['doomed' => fn () => throw new FailJob('address rejected')], maxJobs: 1);

        self::assertSame(
            [['fail', 'job-1', 'address rejected', FailJob::class]],
            $this->transport->settlements(),
        );
        self::assertSame('address rejected', $this->logs->first('job failed')['error']);
    }

    public function testAJobOfAnUnknownTypeFailsWithoutRunningAnything(): void
    {
        $known = new CallableHandler(fn () => 'ran');
        $this->transport->jobs = [Jobs::make('App\\Evil')];
        $this->runWorker(['echo' => $known], maxJobs: 1);

        $settlements = $this->transport->settlements();
        self::assertSame('fail', $settlements[0][0]);
        self::assertSame('UnknownJobType', $settlements[0][3]);
        self::assertStringContainsString('App\\Evil', $settlements[0][2]);
        self::assertSame([], $known->handled);
    }

    public function testAPayloadThatIsNotAnObjectFails(): void
    {
        $this->transport->jobs = [
            Job::fromReservation(['id' => 'j', 'queue' => 'q', 'type' => 'echo', 'payload' => '[1]']),
        ];
        $this->runWorker(['echo' => fn () => 'ran'], maxJobs: 1);

        self::assertSame('InvalidPayload', $this->transport->settlements()[0][3]);
    }

    public function testTheLastAttemptRetriedIsLoggedDead(): void
    {
        $this->transport->jobs = [Jobs::make('boom', attempts: 3)];
        $this->transport->retryOutcome = RetryOutcome::Dead;
        $this->runWorker(['boom' => fn () => throw new RuntimeException('still failing')], maxJobs: 1);

        self::assertContains('job dead', $this->logs->messages());
        self::assertNotContains('job retried', $this->logs->messages());
    }

    public function testARetryPastTheTtlIsLoggedExpired(): void
    {
        $this->transport->jobs = [Jobs::make('boom')];
        $this->transport->retryOutcome = RetryOutcome::Expired;
        $this->runWorker(['boom' => fn () => throw new RuntimeException('later')], maxJobs: 1);

        self::assertContains('job expired: its TTL ends before a retry', $this->logs->messages());
        self::assertNotContains('job retried', $this->logs->messages());
    }

    public function testALeaseLostOnAckIsLoggedAndNotCounted(): void
    {
        $this->transport->jobs = [Jobs::make('echo', id: 'stale'), Jobs::make('echo', id: 'fresh')];
        $this->transport->ackHeld = [false, true];
        $code = $this->runWorker(['echo' => fn () => 'done'], maxJobs: 1);

        self::assertSame(ExitCode::MAX_JOBS, $code);
        self::assertSame(1, $this->worker?->jobsDone());
        self::assertSame(['ack', 'ack'], array_column($this->transport->settlements(), 0));
        $lost = $this->logs->first('lease lost');
        self::assertSame('stale', $lost['job_id']);
        self::assertSame('fresh', $this->logs->first('job succeeded')['job_id']);
    }

    public function testStopsWith12OnceTheMemoryLimitIsReached(): void
    {
        $this->transport->jobs = [Jobs::make('hog', id: 'a'), Jobs::make('hog', id: 'b')];
        $code = $this->runWorker(['hog' => function () {
            $this->memory->bytes = 128 * 1024 * 1024;

            return null;
        }]);

        self::assertSame(ExitCode::MEMORY_LIMIT, $code);
        self::assertSame([['ack', 'a', null]], $this->transport->settlements(), 'stops between jobs');
        self::assertSame(['reason' => 'memory', 'exit_code' => 12], $this->stoppingFields());
    }

    public function testStopsWith13AfterMaxJobs(): void
    {
        $this->transport->jobs = [Jobs::make(id: 'a'), Jobs::make(id: 'b'), Jobs::make(id: 'c')];
        $code = $this->runWorker(['echo' => fn () => 1], maxJobs: 2);

        self::assertSame(ExitCode::MAX_JOBS, $code);
        self::assertSame(['a', 'b'], array_column($this->transport->settlements(), 1));
    }

    public function testStopsWith14AfterMaxTimeEvenWhenIdle(): void
    {
        $this->transport->onEmpty = fn () => $this->clock->advance(3000);
        $code = $this->runWorker([], maxTimeSeconds: 10);

        self::assertSame(ExitCode::MAX_TIME, $code);
        self::assertCount(4, $this->transport->calls, 'reserved until 10 s had passed');
        self::assertSame(['reason' => 'max_time', 'exit_code' => 14], $this->stoppingFields());
    }

    public function testAQuitDuringAJobLetsItFinishAndBeAckedThenExits0(): void
    {
        $this->transport->jobs = [Jobs::make(id: 'running'), Jobs::make(id: 'next')];
        $code = $this->runWorker(['echo' => function () {
            $this->worker?->quit();

            return ['finished' => true];
        }]);

        self::assertSame(ExitCode::SIGNAL, $code);
        self::assertSame([['ack', 'running', '{"finished":true}']], $this->transport->settlements());
        self::assertCount(1, $this->transport->jobs, 'the next job was never reserved');
        self::assertSame(['reason' => 'signal', 'exit_code' => 0], $this->stoppingFields());
    }

    public function testASuccessIsAckedTogetherWithTheLeaseOfTheNextJobWhichRunsWithoutAnotherReserve(): void
    {
        $this->transport->jobs = [Jobs::make(id: 'a'), Jobs::make(id: 'b'), Jobs::make(id: 'c')];
        $handler = new CallableHandler(fn (Job $job) => $job->id);
        $code = $this->runWorker(['echo' => $handler]);

        self::assertSame(ExitCode::SIGNAL, $code);
        self::assertSame(['a', 'b', 'c'], $handler->handled);
        self::assertSame([
            ['reserve'],
            ['ackAndReserve', 'a', '"a"'],
            ['ackAndReserve', 'b', '"b"'],
            ['ackAndReserve', 'c', '"c"'],
            ['reserve'],
        ], $this->transport->calls, 'nothing came with the last ack: reserved as usual');
        self::assertSame(3, $this->worker?->jobsDone());
        self::assertSame(
            ['a', 'b', 'c'],
            array_column(array_filter(
                $this->logs->all(),
                static fn (array $line) => $line['msg'] === 'job succeeded',
            ), 'job_id'),
        );
    }

    public function testWhenNoJobComesWithTheAckTheWorkerReservesAsUsual(): void
    {
        $this->transport->jobs = [Jobs::make(id: 'a'), Jobs::make(id: 'b')];
        $this->transport->leaseWithAck = false;
        $this->runWorker(['echo' => fn () => null]);

        self::assertSame(
            ['reserve', 'ackAndReserve', 'reserve', 'ackAndReserve', 'reserve'],
            array_column($this->transport->calls, 0),
        );
        self::assertSame(2, $this->worker?->jobsDone());
    }

    public function testTheLastJobBeforeMaxJobsIsAckedAloneSoNothingMoreIsLeased(): void
    {
        $this->transport->jobs = [Jobs::make(id: 'a'), Jobs::make(id: 'b'), Jobs::make(id: 'c'), Jobs::make(id: 'd')];
        $code = $this->runWorker(['echo' => fn () => null], maxJobs: 3);

        self::assertSame(ExitCode::MAX_JOBS, $code);
        self::assertSame(3, $this->worker?->jobsDone());
        self::assertSame([
            ['reserve'],
            ['ackAndReserve', 'a', null],
            ['ackAndReserve', 'b', null],
            ['ack', 'c', null],
        ], $this->transport->calls);
        self::assertSame(['d'], array_map(static fn (Job $job) => $job->id, $this->transport->jobs));
    }

    public function testWithMaxJobs1TheOnlyJobIsAckedAlone(): void
    {
        $this->transport->jobs = [Jobs::make(id: 'a'), Jobs::make(id: 'b')];
        $code = $this->runWorker(['echo' => fn () => null], maxJobs: 1);

        self::assertSame(ExitCode::MAX_JOBS, $code);
        self::assertSame([['reserve'], ['ack', 'a', null]], $this->transport->calls);
    }

    public function testAQuitDuringTheAckThatLeasedTheNextJobStillRunsAndAcksThatJobThenExits0(): void
    {
        $this->transport->jobs = [Jobs::make(id: 'a'), Jobs::make(id: 'leased'), Jobs::make(id: 'never')];
        $this->transport->duringAckAndReserve = fn () => $this->worker?->quit();
        $handler = new CallableHandler(fn () => 'done');
        $code = $this->runWorker(['echo' => $handler]);

        self::assertSame(ExitCode::SIGNAL, $code);
        self::assertSame(['a', 'leased'], $handler->handled, 'a leased job is always run');
        self::assertSame([
            ['reserve'],
            ['ackAndReserve', 'a', '"done"'],
            ['ack', 'leased', '"done"'],
        ], $this->transport->calls, 'acked alone, and no reserve after the quit');
        self::assertSame(2, $this->worker?->jobsDone());
        self::assertSame(['reason' => 'signal', 'exit_code' => 0], $this->stoppingFields());
    }

    public function testAStoppingWorkerRunsTheJobItsUnansweredReserveLeased(): void
    {
        // The ack's reply was lost (the ack was sent again and held), so the reserve that went
        // with it never said what it leased; then the signal came.
        $this->transport->jobs = [Jobs::make(id: 'a'), Jobs::make(id: 'never')];
        $this->transport->leaseWithAck = false;
        $this->transport->unansweredJobs = [Jobs::make(id: 'leased-unseen')];
        $this->transport->duringAckAndReserve = fn () => $this->worker?->quit();
        $handler = new CallableHandler(fn () => 'done');
        $code = $this->runWorker(['echo' => $handler]);

        self::assertSame(ExitCode::SIGNAL, $code);
        self::assertSame(['a', 'leased-unseen'], $handler->handled, 'run, not left to its lease');
        self::assertSame([
            ['reserve'],
            ['ackAndReserve', 'a', '"done"'],
            ['leasedUnanswered', 'leased-unseen'],
            ['ack', 'leased-unseen', '"done"'],
        ], $this->transport->calls, 'asked once, with no new reserve after the quit');
        self::assertSame(2, $this->worker?->jobsDone());
    }

    public function testAnAckGivenUpForAStopIsLoggedNotCountedAndTheWorkerExits0(): void
    {
        $this->transport->jobs = [Jobs::make(id: 'a'), Jobs::make(id: 'never')];
        $this->transport->duringAckAndReserve = function (): void {
            $this->worker?->quit();

            throw new StopRequested(new Unavailable('Connection refused'));
        };
        $code = $this->runWorker(['echo' => fn () => 'done']);

        self::assertSame(ExitCode::SIGNAL, $code);
        self::assertSame(0, $this->worker?->jobsDone());
        self::assertSame(
            ['worker started', 'job started', 'job outcome not recorded', 'worker stopping'],
            $this->logs->messages(),
        );
        $unrecorded = $this->logs->first('job outcome not recorded');
        self::assertSame('a', $unrecorded['job_id']);
        self::assertSame('succeeded', $unrecorded['outcome']);
        self::assertSame('warn', $unrecorded['level']);
        self::assertSame([['reserve'], ['ackAndReserve', 'a', '"done"']], $this->transport->calls);
    }

    public function testAFailedOrRetriedJobNeverLeasesTheNextOne(): void
    {
        $this->transport->jobs = [
            Jobs::make('boom', id: 'a'),
            Jobs::make('doomed', id: 'b'),
            Jobs::make('echo', id: 'c'),
        ];
        $this->runWorker([
            'boom' => fn () => throw new RuntimeException('try later'),
            'doomed' => fn () => throw new FailJob('never'),
            'echo' => fn () => null,
        ]);

        self::assertSame(
            [['reserve'], ['retry', 'a'], ['reserve'], ['fail', 'b'], ['reserve'], ['ackAndReserve', 'c'], ['reserve']],
            array_map(static fn (array $call) => array_slice($call, 0, 2), $this->transport->calls),
        );
    }

    public function testALeaseLostOnTheCombinedAckIsLoggedAndTheLeasedJobStillRuns(): void
    {
        $this->transport->jobs = [Jobs::make(id: 'stale'), Jobs::make(id: 'fresh')];
        $this->transport->ackHeld = [false];
        $this->runWorker(['echo' => fn () => null]);

        self::assertSame(['ackAndReserve', 'ackAndReserve'], array_column($this->transport->settlements(), 0));
        self::assertSame(1, $this->worker?->jobsDone());
        self::assertSame('stale', $this->logs->first('lease lost')['job_id']);
        self::assertSame('fresh', $this->logs->first('job succeeded')['job_id']);
    }

    public function testALeasedJobThatTimesOutIsRetriedAndTheWorkerExits15(): void
    {
        $this->transport->jobs = [Jobs::make('echo', id: 'a'), Jobs::make('slow', id: 'leased')];
        $code = $this->runWorker([
            'echo' => fn () => null,
            'slow' => function () {
                $this->clock->advance(60_000);
                $this->worker?->onAlarm();
            },
        ], timeoutSeconds: 60);

        self::assertSame(ExitCode::JOB_TIMEOUT, $code);
        self::assertSame([ExitCode::JOB_TIMEOUT], $this->worker?->exits);
        self::assertSame(
            [['reserve'], ['ackAndReserve', 'a'], ['retry', 'leased']],
            array_map(static fn (array $call) => array_slice($call, 0, 2), $this->transport->calls),
        );
    }

    public function testTheTimerIsArmedForTheHeartbeatIntervalOrTheTimeoutWhicheverComesFirst(): void
    {
        $this->transport->jobs = [Jobs::make(id: 'default'), Jobs::make(id: 'own', timeoutMs: 2500)];
        $this->runWorker(['echo' => fn () => null], maxJobs: 2, timeoutSeconds: 60, leaseSeconds: 30);

        self::assertSame([10, 0, 3, 0], $this->worker?->alarms);
    }

    public function testATickPastTheHeartbeatIntervalExtendsTheLeaseAndRearms(): void
    {
        $this->transport->jobs = [Jobs::make()];
        $this->runWorker(['echo' => function () {
            $this->clock->advance(10_000);
            $this->worker?->onAlarm();

            return 'done';
        }], maxJobs: 1, leaseSeconds: 30);

        self::assertSame(
            [['heartbeat', 'job-1', 30_000, null], ['ack', 'job-1', '"done"']],
            $this->transport->settlements(),
        );
        self::assertSame([10, 10, 0], $this->worker?->alarms);
    }

    public function testATickPastTheTimeoutRetriesTheJobAndExits15(): void
    {
        $this->transport->jobs = [Jobs::make('slow'), Jobs::make('slow', id: 'never')];
        $code = $this->runWorker(['slow' => function () {
            $this->clock->advance(60_000);
            $this->worker?->onAlarm();

            return 'too late';
        }], timeoutSeconds: 60);

        self::assertSame(ExitCode::JOB_TIMEOUT, $code);
        self::assertSame([ExitCode::JOB_TIMEOUT], $this->worker?->exits);
        self::assertSame(
            [['retry', 'job-1', 'timed out after 60 s', 'JobTimeout', null]],
            $this->transport->settlements(),
            'retried, never acked',
        );
        $messages = $this->logs->messages();
        self::assertContains('job timed out', $messages);
        self::assertSame(1, array_count_values($messages)['worker stopping']);
        self::assertSame(['reason' => 'timeout', 'exit_code' => 15], $this->stoppingFields());
    }

    /** @dataProvider retriesThatDoNotReachTheServer */
    public function testATimedOutJobWhoseRetryIsNotRecordedIsLoggedAndTheWorkerStillExits15(\Throwable $failure): void
    {
        $this->transport->jobs = [Jobs::make('slow'), Jobs::make('slow', id: 'never')];
        $this->transport->retryGivesUp = $failure;
        $code = $this->runWorker(['slow' => function () {
            $this->clock->advance(60_000);
            $this->worker?->onAlarm();

            return 'too late';
        }], timeoutSeconds: 60);

        self::assertSame(ExitCode::JOB_TIMEOUT, $code);
        self::assertSame([ExitCode::JOB_TIMEOUT], $this->worker?->exits);
        $unrecorded = $this->logs->first('job outcome not recorded');
        self::assertSame('job-1', $unrecorded['job_id']);
        self::assertSame('retry', $unrecorded['outcome']);
        self::assertSame($failure->getMessage(), $unrecorded['error']);
        self::assertSame(['reason' => 'timeout', 'exit_code' => 15], $this->stoppingFields());
        self::assertCount(1, $this->transport->jobs, 'nothing more was reserved');
    }

    /** @return array<string, array{\Throwable}> */
    public static function retriesThatDoNotReachTheServer(): array
    {
        return [
            'given up for a stop' => [new StopRequested(new Unavailable('Connection refused'))],
            // What curl says when asked to reuse its handle from inside one of its callbacks.
            'failed outright' => [new \Error('Attempt to reset cURL handle from a callback')],
        ];
    }

    public function testAnAlarmThatArrivesAsTheHandlerReturnsChangesNothing(): void
    {
        $this->transport->jobs = [Jobs::make('quick')];
        $code = $this->runWorker(['quick' => function () {
            $this->clock->advance(60_000); // done just as the timeout comes
            $worker = $this->worker;
            self::assertNotNull($worker);
            $worker->beforeDisarm = static fn () => $worker->onAlarm();

            return 'in time';
        }], timeoutSeconds: 60);

        $this->assertAckedInTime($code);
    }

    public function testTheTimeoutStopsWhenTheHandlerReturnsNotWhenItsResultIsEncoded(): void
    {
        $this->transport->jobs = [Jobs::make('quick')];
        $code = $this->runWorker(['quick' => function () {
            $this->clock->advance(59_000);

            // A result slow to encode: the alarm comes while it is, past the timeout.
            return new class ($this) implements \JsonSerializable {
                public function __construct(private readonly WorkerTest $test)
                {
                }

                public function jsonSerialize(): string
                {
                    $this->test->passTheTimeout();

                    return 'in time';
                }
            };
        }], timeoutSeconds: 60);

        $this->assertAckedInTime($code);
    }

    /** The job was acked with its result, not timed out; the worker ran on. */
    private function assertAckedInTime(int $code): void
    {
        self::assertSame(ExitCode::SIGNAL, $code);
        self::assertSame([], $this->worker?->exits);
        self::assertSame([['ackAndReserve', 'job-1', '"in time"']], $this->transport->settlements());
        self::assertNotContains('job timed out', $this->logs->messages());
    }

    public function passTheTimeout(): void
    {
        $this->clock->advance(5_000);
        $this->worker?->onAlarm();
    }

    public function testARetryGivenUpForAStopIsLoggedAndTheWorkerExits0(): void
    {
        $this->transport->jobs = [Jobs::make('boom'), Jobs::make('boom', id: 'never')];
        $this->transport->retryGivesUp = new StopRequested(new Unavailable('Connection refused'));
        $code = $this->runWorker(['boom' => function () {
            $this->worker?->quit();

            throw new RuntimeException('SMTP said no');
        }]);

        self::assertSame(ExitCode::SIGNAL, $code);
        self::assertSame('retry', $this->logs->first('job outcome not recorded')['outcome']);
        self::assertNotContains('job retried', $this->logs->messages());
        self::assertCount(1, $this->transport->jobs, 'nothing more was reserved');
    }

    public function testAJobsOwnTimeoutWins(): void
    {
        $this->transport->jobs = [Jobs::make('slow', timeoutMs: 1500)];
        $code = $this->runWorker(['slow' => function () {
            $this->clock->advance(1500);
            $this->worker?->onAlarm();
        }], timeoutSeconds: 60);

        self::assertSame(ExitCode::JOB_TIMEOUT, $code);
        self::assertSame(
            'timed out after 2 s (timeout 1.5 s, rounded up to whole seconds)',
            $this->transport->settlements()[0][2],
        );
    }

    /** @dataProvider heartbeatErrors */
    public function testAnAutomaticHeartbeatThatFailsIsLoggedOncePerJobAndTheJobGoesOn(\Throwable $error): void
    {
        $this->transport->jobs = [Jobs::make(id: 'a'), Jobs::make(id: 'b')];
        $this->transport->heartbeatError = $error;
        $this->runWorker(['echo' => function () {
            for ($tick = 0; $tick < 2; $tick++) {
                $this->clock->advance(10_000);
                $this->worker?->onAlarm();
            }

            return 'done';
        }], maxJobs: 2, leaseSeconds: 30);

        self::assertSame(
            ['heartbeat', 'heartbeat', 'ackAndReserve', 'heartbeat', 'heartbeat', 'ack'],
            array_column($this->transport->settlements(), 0),
            'each job ran to the end and was acked',
        );
        self::assertSame([10, 10, 10, 0, 10, 10, 10, 0], $this->worker?->alarms, 'the timer goes on');
        $failures = array_values(array_filter(
            $this->logs->all(),
            static fn (array $line) => $line['msg'] === 'heartbeat failed',
        ));
        self::assertSame(['a', 'b'], array_column($failures, 'job_id'));
        self::assertSame('warn', $failures[0]['level']);
        self::assertSame($error->getMessage(), $failures[0]['error']);
        self::assertSame($error::class, $failures[0]['error_class']);
        self::assertSame('echo', $failures[0]['type'], 'the line names the job');
        self::assertArrayNotHasKey('duration_ms', $failures[0], 'the job has not ended');
        self::assertNotContains('lease lost', $this->logs->messages());
    }

    /** @return array<string, array{\Throwable}> */
    public static function heartbeatErrors(): array
    {
        return [
            'a gateway error' => [new GatewayError('heartbeat: the gateway answered 400 VALIDATION_FAILED: no')],
            'a script error' => [new ScriptFailed('heartbeat: unexpected reply WHAT')],
        ];
    }

    public function testAHeartbeatThatFindsTheLeaseGoneStopsReporting(): void
    {
        $this->transport->jobs = [Jobs::make(id: 'lost'), Jobs::make(id: 'kept')];
        $this->transport->heartbeatHeld = false;
        $this->runWorker(['echo' => function (Job $job, JobContext $context) {
            if ($job->id === 'lost') {
                $this->clock->advance(10_000);
                $this->worker?->onAlarm();
                self::assertTrue($context->leaseLost());
            }

            return 'done';
        }], maxJobs: 1);

        self::assertSame(
            [['heartbeat', 'lost', 30_000, null], ['ack', 'kept', '"done"']],
            $this->transport->settlements(),
        );
        self::assertSame(['lost'], array_column(array_filter(
            $this->logs->all(),
            static fn (array $line) => $line['msg'] === 'lease lost',
        ), 'job_id'));
    }

    public function testAHandlersHeartbeatHoldsQuitSignalsBackAndLeavesItsSignalMaskAsItWas(): void
    {
        $this->transport->jobs = [Jobs::make()];
        $blockedDuring = [];
        // A SIGTERM arriving as a heartbeat fails would be dropped by PHP if it were not held.
        $this->transport->duringHeartbeat = static function () use (&$blockedDuring): void {
            pcntl_sigprocmask(SIG_BLOCK, [], $blockedDuring);
        };
        $blockedAfter = [];
        $this->runWorker(['echo' => function (Job $job, JobContext $context) use (&$blockedAfter) {
            pcntl_sigprocmask(SIG_BLOCK, [SIGUSR2]); // the handler's own mask
            try {
                $context->heartbeat();
                pcntl_sigprocmask(SIG_BLOCK, [], $blockedAfter);
            } finally {
                pcntl_sigprocmask(SIG_UNBLOCK, [SIGUSR2]);
            }

            return null;
        }], maxJobs: 1);

        foreach ([SIGTERM, SIGINT, SIGQUIT] as $signal) {
            self::assertContains($signal, $blockedDuring, "signal {$signal} held during the call");
            self::assertNotContains($signal, $blockedAfter, "signal {$signal} not held after it");
        }
        self::assertContains(SIGUSR2, $blockedAfter, 'the handler\'s own blocked signal stays blocked');
    }

    public function testProgressIsSentWithAHeartbeat(): void
    {
        $this->transport->jobs = [Jobs::make()];
        $this->runWorker(['echo' => function (Job $job, JobContext $context) {
            $context->progress(['done' => 3, 'of' => 10]);
            $context->heartbeat();

            return null;
        }], maxJobs: 1, leaseSeconds: 60);

        self::assertSame(
            [
                ['heartbeat', 'job-1', 60_000, '{"done":3,"of":10}'],
                ['heartbeat', 'job-1', 60_000, null],
                ['ack', 'job-1', null],
            ],
            $this->transport->settlements(),
        );
    }

    public function testAnIntegerADoubleCannotHoldFailsTheResultAndRefusesTheProgress(): void
    {
        $this->transport->jobs = [Jobs::make(), Jobs::make(id: 'job-2')];
        $refused = null;
        $this->runWorker(['echo' => function (Job $job, JobContext $context) use (&$refused) {
            if ($job->id === 'job-2') {
                return ['id' => 9_007_199_254_740_992, 'big' => 1.0e30, 'text' => '9007199254740993'];
            }
            try {
                $context->progress(['row' => 9_007_199_254_740_993]);
            } catch (ProgressRejected $rejected) {
                $refused = $rejected->getMessage();
            }

            return ['id' => -9_007_199_254_740_993];
        }], maxJobs: 2);

        self::assertSame(
            "the progress has the integer 9007199254740993, past 2^53, which a JSON number cannot carry"
            . " exactly (the job's status would show 9007199254740992); return it as a string",
            $refused,
        );
        $settlements = $this->transport->settlements();
        self::assertSame(['fail', 'job-1'], [$settlements[0][0], $settlements[0][1]], 'no heartbeat was sent');
        self::assertSame('InexactInteger', $settlements[0][3]);
        self::assertStringStartsWith('the result has the integer -9007199254740993, past 2^53', $settlements[0][2]);
        self::assertSame(
            ['ack', 'job-2', '{"id":9007199254740992,"big":1.0e+30,"text":"9007199254740993"}'],
            $settlements[1],
            '2^53 itself, a float and digits in a string are what they are',
        );
    }

    public function testAResultThatCannotBeJsonFailsTheJobForGood(): void
    {
        $this->transport->jobs = [Jobs::make()];
        $this->runWorker(['echo' => fn () => ['ratio' => NAN]], maxJobs: 1);

        [$call, , $message, $class] = $this->transport->settlements()[0];
        self::assertSame(['fail', \JsonException::class], [$call, $class]);
        self::assertStringStartsWith('the result cannot be encoded as JSON: ', $message);
    }

    public function testAResultThatIsNotUtf8FailsTheJobRatherThanBeingRewritten(): void
    {
        $this->transport->jobs = [Jobs::make()];
        $this->runWorker(['echo' => fn () => ['bytes' => "\xff\xfe\x00abc"]], maxJobs: 1);

        [$call, , $message, $class] = $this->transport->settlements()[0];
        self::assertSame(['fail', \JsonException::class], [$call, $class]);
        self::assertStringContainsString('Malformed UTF-8', $message);
    }

    public function testProgressThatIsNotUtf8IsRefusedWithNothingSent(): void
    {
        $this->transport->jobs = [Jobs::make()];
        $thrown = null;
        $this->runWorker(['echo' => function (Job $job, JobContext $context) use (&$thrown) {
            try {
                $context->progress("\xff");
            } catch (\JsonException $error) {
                $thrown = $error;
            }
        }], maxJobs: 1);

        self::assertInstanceOf(\JsonException::class, $thrown);
        self::assertSame([['ack', 'job-1', null]], $this->transport->settlements(), 'no heartbeat carried it');
    }

    public function testAResultWhoseJsonSerializeThrowsIsRetriedLikeTheHandlersOwnException(): void
    {
        $this->transport->jobs = [Jobs::make(), Jobs::make(id: 'job-2')];
        $this->runWorker(['echo' => fn () => new class implements \JsonSerializable {
            public function jsonSerialize(): mixed
            {
                throw new \LogicException('not loaded');
            }
        }], maxJobs: 2);

        self::assertSame(
            [
                ['retry', 'job-1', 'not loaded', \LogicException::class],
                ['retry', 'job-2', 'not loaded', \LogicException::class],
            ],
            array_map(static fn (array $call): array => array_slice($call, 0, 4), $this->transport->settlements()),
            'the worker goes on to the next job',
        );
    }

    public function testAFactoryThatGivesNoHandlerFailsItsJobsForGood(): void
    {
        $this->transport->jobs = [Jobs::make()];
        $this->runWorker([], maxJobs: 1, factories: ['echo' => fn () => 42]);

        [$call, , $message, $class] = $this->transport->settlements()[0];
        self::assertSame(['fail', 'InvalidHandler'], [$call, $class]);
        self::assertStringContainsString('the factory for job type echo returned int', $message);
    }

    public function testALongErrorMessageIsCutTo8192Bytes(): void
    {
        $this->transport->jobs = [Jobs::make()];
        $this->runWorker(['echo' => fn () => throw new RuntimeException(str_repeat('é', 5000))], maxJobs: 1);

        $message = $this->transport->settlements()[0][2];
        self::assertSame(8192, strlen($message));
        self::assertTrue((bool) preg_match('//u', $message), 'still valid UTF-8');
    }

    public function testAnErrorInTheWorkerItselfExits1(): void
    {
        $this->transport->onEmpty = fn () => throw new LogicException('script reply out of contract');
        $code = $this->runWorker([]);

        self::assertSame(ExitCode::ERROR, $code);
        $failed = $this->logs->first('worker failed');
        self::assertSame('script reply out of contract', $failed['error']);
        self::assertSame(1, $failed['exit_code']);
    }

    public function testAnErrorReportingAJobNamesTheJob(): void
    {
        $this->transport->jobs = [Jobs::make()];
        $this->transport->duringAckAndReserve = fn () => throw new LogicException('ack reply out of contract');
        $code = $this->runWorker(['echo' => fn () => 'done']);

        self::assertSame(ExitCode::ERROR, $code);
        $failed = $this->logs->first('worker failed');
        self::assertSame('ack reply out of contract', $failed['error']);
        self::assertSame(['job-1', 'echo', 1], [$failed['job_id'], $failed['type'], $failed['attempt']]);
    }

    public function testTheStartLineNamesQueuesAndTransport(): void
    {
        $this->runWorker([], maxJobs: 0, memoryMb: 1);

        $started = $this->logs->first('worker started');
        self::assertSame(['emails', 'reports'], $started['queues']);
        self::assertSame('fake', $started['transport']);
    }

    /**
     * @param array<string, Closure|\Jobgate\Worker\Handler> $handlers closures become handlers
     * @param array<string, Closure> $factories lazy entries of the map, as they are
     */
    private function runWorker(
        array $handlers,
        int $maxJobs = 0,
        int $maxTimeSeconds = 0,
        int $timeoutSeconds = 60,
        int $leaseSeconds = 30,
        int $memoryMb = 128,
        array $factories = [],
    ): int {
        $map = $factories;
        foreach ($handlers as $type => $handler) {
            $map[$type] = $handler instanceof Closure ? new CallableHandler($handler) : $handler;
        }
        $this->transport->onEmpty ??= fn () => $this->worker?->quit();
        $this->worker = new TestableWorker(
            $this->transport,
            HandlerMap::fromArray($map),
            new WorkerOptions(
                queues: ['emails', 'reports'],
                timeoutSeconds: $timeoutSeconds,
                leaseSeconds: $leaseSeconds,
                memoryMb: $memoryMb,
                maxJobs: $maxJobs,
                maxTimeSeconds: $maxTimeSeconds,
            ),
            $this->logs->logger,
            $this->clock,
            $this->memory,
        );

        return $this->worker->run();
    }

    /** @return array{reason: mixed, exit_code: mixed} */
    private function stoppingFields(): array
    {
        $line = $this->logs->first('worker stopping') ?? [];

        return ['reason' => $line['reason'] ?? null, 'exit_code' => $line['exit_code'] ?? null];
    }
}
