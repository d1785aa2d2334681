<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Transport;

use Jobgate\Worker\Tests\Fakes\FakeClock;
use Jobgate\Worker\Tests\Fakes\FakeConnection;
use Jobgate\Worker\Tests\Fakes\Jobs;
use Jobgate\Worker\Tests\Fakes\LogLines;
use Jobgate\Worker\StopRequest;
use Jobgate\Worker\Transport\Redis\RedisTransport;
use Jobgate\Worker\Transport\Redis\RedisTransportOptions;
use Jobgate\Worker\Transport\Redis\ScriptFailed;
use Jobgate\Worker\Transport\Redis\ScriptLibrary;
use Jobgate\Worker\Transport\Retrier;
use Jobgate\Worker\Transport\RetryOutcome;
use Jobgate\Worker\Transport\Unavailable;
use PHPUnit\Framework\TestCase;

/**
 * The KEYS and ARGV of every script call, exactly as PROTOCOL.md lists them.
 */
final class RedisTransportTest extends TestCase
{
    private const JOB_REPLY = [
        'JOB', 'id', 'j1', 'queue', 'high', 'type', 'echo', 'payload', '{"a":1}', 'attempts', 1,
        'max_attempts', '3', 'timeout_ms', '', 'request_id', 'r1', 'created_at', '1700000000000',
        'priority', '5', 'lease_token', 'TOKEN', 'lease_deadline', 1700000030000,
    ];

    private FakeConnection $connection;
    private FakeClock $clock;
    private LogLines $logs;

    protected function setUp(): void
    {
        $this->connection = new FakeConnection();
        $this->clock = new FakeClock();
        $this->logs = new LogLines();
    }

    public function testReserveRunsTheReserveScriptPerQueueInPriorityOrder(): void
    {
        $this->connection->replies = [['EMPTY', -1], self::JOB_REPLY];
        $job = $this->transport()->reserve();

        self::assertNotNull($job);
        self::assertSame('j1', $job->id);
        self::assertSame('high', $job->queue);
        self::assertSame(['a' => 1], $job->payload);
        self::assertSame('TOKEN', $job->leaseToken);
        self::assertSame([], $this->connection->waits, 'no waiting while a queue had a job');

        [[$first, $keys, $args], [$second, $lowKeys]] = $this->connection->scripts;
        self::assertSame(['reserve', 'reserve'], [$first, $second]);
        self::assertSame([
            'jg:{emails}:active', 'jg:{emails}:scheduled', 'jg:{emails}:dead',
            'jg:{emails}:wake', 'jg:{emails}:events', 'jg:{emails}:stats',
        ], $keys);
        self::assertSame('jg:{low}:active', $lowKeys[0]);
        self::assertSame('jg:{emails}:', $args[0]);
        self::assertSame('box:1', $args[1]);
        self::assertMatchesRegularExpression('/^[0-9a-f]{32}$/', $args[2], 'a fresh 16-byte token');
        self::assertSame(['30000', '86400000', '604800000', '10000'], array_slice($args, 3));
    }

    public function testEachReserveThatBringsAJobUsesAFreshLeaseToken(): void
    {
        $this->connection->replies = [self::JOB_REPLY, self::JOB_REPLY];
        $transport = $this->transport(['emails']);
        $transport->reserve();
        $transport->reserve();

        self::assertNotSame($this->connection->scripts[0][2][2], $this->connection->scripts[1][2][2]);
    }

    public function testAReserveWhoseReplyWasLostGoesAgainWithTheSameToken(): void
    {
        $this->connection->replies = [new Unavailable('read error on connection'), self::JOB_REPLY, self::JOB_REPLY];
        $transport = $this->transport(['emails']);

        self::assertNull($transport->reserve());
        self::assertSame('j1', $transport->reserve()?->id);
        $transport->reserve();

        [$lost, $again, $next] = array_map(
            static fn (array $call): string => $call[2][2],
            $this->connection->scripts,
        );
        self::assertSame($lost, $again, 'sent again as it was: Redis hands back what the first one leased');
        self::assertNotSame($again, $next, 'a token that brought a job is not used again');
    }

    public function testEachQueueKeepsItsTokenUntilAReplyBringsAJobFromIt(): void
    {
        $this->connection->replies = [['EMPTY', -1], self::JOB_REPLY, ['EMPTY', -1], self::JOB_REPLY];
        $transport = $this->transport();
        $transport->reserve();
        $transport->reserve();

        [$emails, $low, $emailsAgain, $lowAgain] = array_map(
            static fn (array $call): string => $call[2][2],
            $this->connection->scripts,
        );
        self::assertSame('jg:{low}:', $this->connection->scripts[3][2][0]);
        self::assertSame($emails, $emailsAgain, 'an EMPTY reply leased nothing: the token goes on');
        self::assertNotSame($low, $lowAgain);
        self::assertNotSame($emails, $low, 'a token per queue');
    }

    public function testALaterQueueWhoseReserveGotNoReplyIsAskedFirstWithTheSameToken(): void
    {
        $this->connection->replies = [['EMPTY', -1], new Unavailable('read error on connection'), self::JOB_REPLY];
        $transport = $this->transport();

        self::assertNull($transport->reserve());
        self::assertSame('j1', $transport->reserve()?->id, 'the job that reserve leased');
        [, $lost, $again] = $this->connection->scripts;
        self::assertSame('jg:{low}:', $again[2][0], 'before the first queue, which may keep the worker busy');
        self::assertSame($lost[2][2], $again[2][2]);
    }

    public function testAReserveLostWithTheCombinedAckGoesAgainWithItsTokenOnTheNextReserve(): void
    {
        $this->connection->replies = [
            new Unavailable('read error on connection'),
            ['LEASE_LOST', 'succeeded', 'succeeded'],
            self::JOB_REPLY,
        ];
        $transport = $this->transport();
        $acked = $transport->ackAndReserve(Jobs::make(), null);
        $next = $transport->reserve();

        self::assertTrue($acked->leaseHeld);
        self::assertNull($acked->next);
        self::assertSame('j1', $next?->id);
        self::assertSame(['ack', 'ack', 'reserve'], array_column($this->connection->scripts, 0));
        $pipelined = $this->connection->batchCalls[0][1] ?? null;
        self::assertNotNull($pipelined);
        self::assertSame('jg:{emails}:', $this->connection->scripts[2][2][0]);
        self::assertSame($pipelined->args[2], $this->connection->scripts[2][2][2]);
    }

    public function testLeasedUnansweredSendsTheLostReserveOnceMoreWithItsToken(): void
    {
        $this->connection->replies = [
            new Unavailable('read error on connection'),
            ['LEASE_LOST', 'succeeded', 'succeeded'],
            self::JOB_REPLY,
        ];
        $transport = $this->transport();
        $transport->ackAndReserve(Jobs::make(), null);

        self::assertSame('j1', $transport->leasedUnanswered()?->id);
        $pipelined = $this->connection->batchCalls[0][1] ?? null;
        self::assertSame($pipelined?->args[2], $this->connection->scripts[2][2][2], 'the same token');
        self::assertNull($transport->leasedUnanswered(), 'answered now: nothing more is asked');
        self::assertCount(3, $this->connection->scripts);
    }

    public function testLeasedUnansweredAsksNothingWhenEveryReserveWasAnswered(): void
    {
        $this->connection->replies = [self::JOB_REPLY];
        $transport = $this->transport();
        $transport->reserve();
        $asked = count($this->connection->scripts);

        self::assertNull($transport->leasedUnanswered());
        self::assertCount($asked, $this->connection->scripts);
    }

    public function testWhenAllQueuesAreEmptyItBlocksOnTheirWakeListsThenReservesOnceMore(): void
    {
        $this->connection->replies = [['EMPTY', -1], ['EMPTY', -1], ['EMPTY', -1], ['EMPTY', -1]];
        $job = $this->transport()->reserve();

        self::assertNull($job);
        $keys = ['jg:{emails}:wake', 'jg:{low}:wake'];
        self::assertSame([[$keys, 1.0], [$keys, 1.0], [$keys, 1.0]], $this->connection->waits, 'in slices');
        self::assertCount(4, $this->connection->scripts);
    }

    public function testAWakeUpTokenEndsTheWait(): void
    {
        $this->connection->replies = [['EMPTY', -1], ['EMPTY', -1], self::JOB_REPLY];
        $this->connection->wakeUps = [null, 'jg:{low}:wake'];
        $job = $this->transport()->reserve();

        self::assertSame('j1', $job?->id);
        self::assertCount(2, $this->connection->waits, 'the second slice got a token');
        self::assertSame([], $this->connection->pushedWakes, 'the token was used');
    }

    public function testAStopRequestedWhileWaitingEndsTheWaitWithoutReservingAgain(): void
    {
        $stop = new StopRequest();
        $this->connection->replies = [['EMPTY', -1], ['EMPTY', -1]];
        $this->connection->onWait = static fn () => $stop->request();

        self::assertNull($this->transport(stop: $stop)->reserve());
        self::assertCount(1, $this->connection->waits, 'no slice after the signal');
        self::assertCount(2, $this->connection->scripts, 'no reserve after it: nothing leased to a stopping worker');
        self::assertSame([], $this->connection->pushedWakes, 'no token was taken');
    }

    public function testATokenTakenByAWorkerAskedToStopGoesBackForAnotherWorker(): void
    {
        $stop = new StopRequest();
        $this->connection->replies = [['EMPTY', -1], ['EMPTY', -1]];
        // The signal came while BLPOP waited (quit signals are held then), and so did a token.
        $this->connection->wakeUps = ['jg:{low}:wake'];
        $this->connection->onWait = static fn () => $stop->request();

        self::assertNull($this->transport(stop: $stop)->reserve());
        self::assertCount(2, $this->connection->scripts, 'nothing leased to a stopping worker');
        self::assertSame(['jg:{low}:wake'], $this->connection->pushedWakes);
    }

    public function testItBlocksNoLongerThanTheNextDueTime(): void
    {
        $this->connection->replies = [['EMPTY', 5000], ['EMPTY', 250], ['EMPTY', -1], self::JOB_REPLY];
        $job = $this->transport()->reserve();

        self::assertSame('j1', $job?->id);
        self::assertSame(0.25, $this->connection->waits[0][1]);
    }

    public function testAckArguments(): void
    {
        $this->connection->replies = [['OK', 1700000001000]];
        self::assertTrue($this->transport()->ack(Jobs::make(id: 'j9'), '{"sent":true}'));

        self::assertSame(['ack', [
            'jg:{q}:job:j9', 'jg:{q}:active', 'jg:{q}:events', 'jg:{q}:stats',
        ], [
            'j9', 'token-j9', '{"sent":true}', '86400000', '10000', 'jg:{q}:',
        ]], $this->connection->scripts[0]);
    }

    public function testAckWithoutAResultSendsAnEmptyString(): void
    {
        $this->connection->replies = [['OK', 1]];
        $this->transport()->ack(Jobs::make(), null);

        self::assertSame('', $this->connection->scripts[0][2][2]);
    }

    public function testFailArguments(): void
    {
        $this->connection->replies = [['DEAD', 1]];
        self::assertTrue($this->transport()->fail(Jobs::make(id: 'j9'), 'bad address', 'App\\Invalid'));

        self::assertSame(['fail', [
            'jg:{q}:job:j9', 'jg:{q}:active', 'jg:{q}:dead', 'jg:{q}:events', 'jg:{q}:stats',
        ], [
            'j9', 'token-j9', 'bad address', 'App\\Invalid', '604800000', '10000', 'jg:{q}:',
        ]], $this->connection->scripts[0]);
    }

    public function testRetryArguments(): void
    {
        $this->connection->replies = [['SCHEDULED', 1], ['QUEUED', 1], ['DEAD', 1], ['EXPIRED', 1]];
        $transport = $this->transport();

        self::assertSame(RetryOutcome::Scheduled, $transport->retry(Jobs::make(id: 'j9'), 'boom', 'E', null));
        self::assertSame(RetryOutcome::Queued, $transport->retry(Jobs::make(id: 'j9'), 'boom', 'E', 0));
        self::assertSame(RetryOutcome::Dead, $transport->retry(Jobs::make(id: 'j9'), 'boom', 'E', 250));
        self::assertSame(RetryOutcome::Expired, $transport->retry(Jobs::make(id: 'j9'), 'boom', 'E', 250));

        self::assertSame(['retry', [
            'jg:{q}:job:j9', 'jg:{q}:active', 'jg:{q}:scheduled', 'jg:{q}:dead',
            'jg:{q}:wake', 'jg:{q}:events', 'jg:{q}:stats',
        ], [
            'j9', 'token-j9', 'boom', 'E', '-1', '0.250000', '604800000', '10000', 'jg:{q}:', '86400000',
        ]], $this->connection->scripts[0]);
        self::assertSame('0', $this->connection->scripts[1][2][4]);
        self::assertSame('250', $this->connection->scripts[2][2][4]);
    }

    public function testHeartbeatArguments(): void
    {
        $this->connection->replies = [['OK', 1], ['OK', 2]];
        $transport = $this->transport();
        self::assertTrue($transport->heartbeat(Jobs::make(id: 'j9'), 30_000));
        $transport->heartbeat(Jobs::make(id: 'j9'), 30_000, '{"pct":50}');

        self::assertSame(['heartbeat', ['jg:{q}:job:j9', 'jg:{q}:active'], [
            'j9', 'token-j9', '30000', '',
        ]], $this->connection->scripts[0]);
        self::assertSame('{"pct":50}', $this->connection->scripts[1][2][3]);
    }

    public function testLeaseLostAndNotFoundMeanTheLeaseWasNotHeld(): void
    {
        $this->connection->replies = [
            ['LEASE_LOST', 'succeeded'], ['NOT_FOUND'], ['LEASE_LOST', 'queued'], ['LEASE_LOST', 'active'],
        ];
        $transport = $this->transport();

        self::assertFalse($transport->ack(Jobs::make(), null));
        self::assertFalse($transport->fail(Jobs::make(), 'm', 'c'));
        self::assertSame(RetryOutcome::LeaseLost, $transport->retry(Jobs::make(), 'm', 'c', null));
        self::assertFalse($transport->heartbeat(Jobs::make(), 1000));
    }

    public function testAnAckThatHitsAnOutageIsRetriedAfterABackoff(): void
    {
        $this->connection->replies = [
            new Unavailable('Connection refused'),
            new Unavailable('Connection refused'),
            ['OK', 1],
        ];
        self::assertTrue($this->transport()->ack(Jobs::make(), null));

        self::assertSame([100, 200], $this->clock->sleeps);
        $outages = array_filter(
            $this->logs->all(),
            static fn ($line) => $line['msg'] === 'redis unavailable, reconnecting',
        );
        self::assertCount(2, $outages);
    }

    public function testARetriedAckWhoseFirstTryLandedCountsAsDone(): void
    {
        $this->connection->replies = [
            new Unavailable('read error on connection'),
            ['LEASE_LOST', 'succeeded', 'succeeded'],
        ];

        self::assertTrue($this->transport()->ack(Jobs::make(), null));
    }

    public function testAResentCallCountsAsDoneOnlyWhenRedisSaysItsOwnTokenEndedTheLease(): void
    {
        $this->connection->replies = [
            new Unavailable('read error on connection'),
            ['LEASE_LOST', 'succeeded'],
            ['LEASE_LOST', 'active', 'queued'],
        ];
        $transport = $this->transport();

        self::assertFalse(
            $transport->ack(Jobs::make(), null),
            'sent again, but another lease finished the job: a lost lease, whatever the state',
        );
        self::assertFalse($transport->ack(Jobs::make(), null), 'an ack does not leave a job queued');
    }

    public function testAckAndReserveSendsTheAckAndAReserveOnTheFirstQueueInOneRoundTrip(): void
    {
        $this->connection->replies = [['OK', 1700000001000], self::JOB_REPLY];
        $acked = $this->transport()->ackAndReserve(Jobs::make(id: 'j9'), '{"sent":true}');

        self::assertTrue($acked->leaseHeld);
        self::assertSame('j1', $acked->next?->id);
        self::assertSame('TOKEN', $acked->next->leaseToken);
        self::assertSame([['ack', 'reserve']], $this->connection->batches);
        self::assertSame([], $this->connection->waits, 'never blocks');

        [$pipelinedAck, $pipelinedReserve] = $this->connection->scripts;
        $this->connection = new FakeConnection([['OK', 1700000001000], self::JOB_REPLY]);
        $this->transport()->ack(Jobs::make(id: 'j9'), '{"sent":true}');
        $this->transport()->reserve();
        [$ack, $reserve] = $this->connection->scripts;
        self::assertSame($ack, $pipelinedAck, 'the same keys and args as ack()');
        self::assertSame('reserve', $pipelinedReserve[0]);
        self::assertSame($reserve[1], $pipelinedReserve[1], 'the keys of the first queue');
        self::assertSame('jg:{emails}:active', $pipelinedReserve[1][0]);
        self::assertMatchesRegularExpression('/^[0-9a-f]{32}$/', $pipelinedReserve[2][2], 'a fresh lease token');
        $pipelinedReserve[2][2] = $reserve[2][2];
        self::assertSame($reserve[2], $pipelinedReserve[2], 'the same args as reserve()');
    }

    public function testAckAndReserveWithNothingOnTheFirstQueueLeasesNothing(): void
    {
        $this->connection->replies = [['OK', 1], ['EMPTY', -1]];
        $acked = $this->transport()->ackAndReserve(Jobs::make(), null);

        self::assertTrue($acked->leaseHeld);
        self::assertNull($acked->next);
        self::assertCount(2, $this->connection->scripts, 'the second queue is left to reserve()');
    }

    public function testAfterACombinedReserveFoundTheFirstQueueEmptyTheNextReserveStartsAtTheSecond(): void
    {
        $this->connection->replies = [['OK', 1], ['EMPTY', -1], self::JOB_REPLY, ['EMPTY', -1], self::JOB_REPLY];
        $transport = $this->transport();
        $transport->ackAndReserve(Jobs::make(), null);

        self::assertSame('j1', $transport->reserve()?->id);
        $reserves = array_slice($this->connection->scripts, 1);
        self::assertSame(
            ['jg:{emails}:active', 'jg:{low}:active'],
            array_map(static fn ($call) => $call[1][0], $reserves),
            'the first queue asked once, with the ack',
        );

        $transport->reserve();
        self::assertSame(
            ['jg:{emails}:active', 'jg:{low}:active'],
            array_map(static fn ($call) => $call[1][0], array_slice($this->connection->scripts, 3)),
            'only the reserve right after the combined one skips the first queue',
        );
    }

    public function testWithOneQueueFoundEmptyByTheCombinedReserveTheNextReserveBlocksAtOnce(): void
    {
        $this->connection->replies = [['OK', 1], ['EMPTY', 400], self::JOB_REPLY];
        $transport = $this->transport(['emails']);
        $transport->ackAndReserve(Jobs::make(), null);

        self::assertSame('j1', $transport->reserve()?->id);
        self::assertSame(
            [[['jg:{emails}:wake'], 0.4]],
            $this->connection->waits,
            'no longer than the wait_ms it was told',
        );
        self::assertSame(['ack', 'reserve', 'reserve'], array_column($this->connection->scripts, 0));
    }

    public function testTheFirstQueuesWaitCountsWhenTheOthersAreEmptyToo(): void
    {
        $this->connection->replies = [['OK', 1], ['EMPTY', 250], ['EMPTY', 5000], ['EMPTY', -1], ['EMPTY', -1]];
        $transport = $this->transport();
        $transport->ackAndReserve(Jobs::make(), null);

        self::assertNull($transport->reserve());
        self::assertSame(0.25, $this->connection->waits[0][1]);
    }

    public function testALeaseLostOnTheCombinedAckStillHandsOutTheLeasedJob(): void
    {
        $this->connection->replies = [['LEASE_LOST', 'succeeded'], self::JOB_REPLY];
        $acked = $this->transport()->ackAndReserve(Jobs::make(), null);

        self::assertFalse($acked->leaseHeld, 'on a first try, LEASE_LOST is LEASE_LOST whatever the state');
        self::assertSame('j1', $acked->next?->id);
    }

    public function testAnOutageDuringTheCombinedAckRetriesTheAckAloneAsARetry(): void
    {
        $this->connection->replies = [
            new Unavailable('read error on connection'),
            ['LEASE_LOST', 'succeeded', 'succeeded'],
        ];
        $acked = $this->transport()->ackAndReserve(Jobs::make(id: 'j9'), null);

        self::assertTrue($acked->leaseHeld, 'the first try landed');
        self::assertNull($acked->next);
        self::assertSame([['ack', 'reserve']], $this->connection->batches);
        self::assertSame(['ack', 'ack'], array_column($this->connection->scripts, 0));
        self::assertSame($this->connection->scripts[0], $this->connection->scripts[1]);
        self::assertSame([100], $this->clock->sleeps, 'waited out like ack()');
        $line = $this->logs->first('redis unavailable, reconnecting');
        self::assertSame('read error on connection', $line['error'] ?? null);
        self::assertSame('j9', $line['job_id'] ?? null, 'the wait names the job whose outcome waits');
    }

    public function testAnOutageAfterTheCombinedAckLandedRetriesItUntilRedisAnswers(): void
    {
        $this->connection->replies = [
            ['OK', 1],
            new Unavailable('read error on connection'),
            new Unavailable('Connection refused'),
            ['LEASE_LOST', 'succeeded', 'succeeded'],
        ];
        $acked = $this->transport()->ackAndReserve(Jobs::make(), null);

        self::assertTrue($acked->leaseHeld);
        self::assertNull($acked->next);
        self::assertSame([100, 200], $this->clock->sleeps);
    }

    public function testARetriedCombinedAckThatFindsTheJobElsewhereLostTheLease(): void
    {
        $this->connection->replies = [new Unavailable('read error on connection'), ['LEASE_LOST', 'active']];

        self::assertFalse($this->transport()->ackAndReserve(Jobs::make(), null)->leaseHeld);
    }

    public function testACombinedReserveReplyOutsideTheContractIsABug(): void
    {
        $this->connection->replies = [['OK', 1], ['WAT']];

        $this->expectException(ScriptFailed::class);
        $this->expectExceptionMessage('reserve: unexpected reply WAT');
        $this->transport()->ackAndReserve(Jobs::make(), null);
    }

    public function testAReserveDuringAnOutageReturnsNothingAfterABackoff(): void
    {
        $this->connection->replies = [new Unavailable('Connection refused'), new Unavailable('Connection refused')];
        $transport = $this->transport();

        self::assertNull($transport->reserve());
        self::assertNull($transport->reserve());
        self::assertSame([100, 200], $this->clock->sleeps);
        self::assertSame('Connection refused', $this->logs->first('redis unavailable, reconnecting')['error'] ?? null);
    }

    public function testAHeartbeatDuringAnOutageIsSkippedNotRetried(): void
    {
        $this->connection->replies = [new Unavailable('Connection refused')];

        self::assertTrue($this->transport()->heartbeat(Jobs::make(), 1000));
        self::assertSame([], $this->clock->sleeps);
    }

    public function testHeartbeatsThatDoNotReachRedisAreLoggedOncePerOutage(): void
    {
        $down = new Unavailable('Connection refused');
        $this->connection->replies = [$down, $down, $down, ['OK'], $down];
        $transport = $this->transport();

        for ($i = 0; $i < 5; $i++) {
            self::assertTrue($transport->heartbeat(Jobs::make(), 1000));
        }
        $notes = array_filter(
            $this->logs->all(),
            static fn ($line) => $line['msg'] === 'heartbeat not sent, server unavailable',
        );
        self::assertCount(2, $notes, 'once for the first outage, once for the second');
        self::assertSame('Connection refused', array_values($notes)[0]['error']);
        self::assertSame(Jobs::make()->id, array_values($notes)[0]['job_id'], 'the line names the job');
    }

    public function testARepliedStatusOutsideTheContractIsABug(): void
    {
        $this->connection->replies = [['WAT']];

        $this->expectException(ScriptFailed::class);
        $this->transport()->ack(Jobs::make(), null);
    }

    /** @param non-empty-list<string> $queues */
    private function transport(array $queues = ['emails', 'low'], ?StopRequest $stop = null): RedisTransport
    {
        return new RedisTransport(
            $this->connection,
            ScriptLibrary::fromDirectory(__DIR__ . '/../../../lua'),
            new RedisTransportOptions(queues: $queues, workerId: 'box:1', leaseMs: 30_000, blockMs: 3000, prefix: 'jg'),
            new Retrier($this->logs->logger, $this->clock, 'redis unavailable, reconnecting'),
            static fn (): float => 0.25,
            $stop ?? new StopRequest(),
        );
    }
}
