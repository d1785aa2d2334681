<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Transport;

use Jobgate\Worker\ProgressRejected;
use Jobgate\Worker\StopRequest;
use Jobgate\Worker\Tests\Fakes\FakeClock;
use Jobgate\Worker\Tests\Fakes\FakeHttpClient;
use Jobgate\Worker\Tests\Fakes\Jobs;
use Jobgate\Worker\Tests\Fakes\LogLines;
use Jobgate\Worker\Transport\Http\GatewayError;
use Jobgate\Worker\Transport\Http\HttpResponse;
use Jobgate\Worker\Transport\Http\HttpTransport;
use Jobgate\Worker\Transport\Http\HttpTransportOptions;
use Jobgate\Worker\Transport\OutcomeRejected;
use Jobgate\Worker\Transport\Retrier;
use Jobgate\Worker\Transport\RetryOutcome;
use Jobgate\Worker\Transport\Unavailable;
use PHPUnit\Framework\TestCase;

/**
 * The worker routes of openapi.yaml: bodies, headers and how each answer is read.
 */
final class HttpTransportTest extends TestCase
{
    private FakeHttpClient $http;
    private FakeClock $clock;
    private LogLines $logs;

    protected function setUp(): void
    {
        $this->http = new FakeHttpClient();
        $this->clock = new FakeClock();
        $this->logs = new LogLines();
    }

    public function testReserveLongPollsOneQueue(): void
    {
        $this->http->responses = [FakeHttpClient::json(200, self::reservation())];
        $job = $this->transport(['emails'])->reserve();

        $request = $this->http->requests[0];
        self::assertSame('http://gw:3000/v1/queues/emails/jobs:reserve', $request['url']);
        $token = $request['body']['lease_token'] ?? '';
        self::assertMatchesRegularExpression('/^[0-9a-f]{32}$/', $token, 'the reservation is named: 16 random bytes');
        self::assertSame(
            ['worker' => 'box:1', 'lease_ms' => 30000, 'wait_ms' => 1000, 'lease_token' => $token],
            $request['body'],
        );
        self::assertSame('Bearer k3y', $request['headers']['Authorization']);
        self::assertGreaterThan(1000, $request['timeout'], 'the request outlives the long poll');

        self::assertNotNull($job);
        self::assertSame('j1', $job->id);
        self::assertSame(['to' => 'ada', 'opts' => []], $job->payload);
        self::assertSame('{"to":"ada","opts":{}}', $job->payloadJson);
        self::assertSame(2, $job->attempts);
        self::assertSame(1500, $job->timeoutMs);
        self::assertSame('req-1', $job->requestId);
        self::assertSame(1_795_000_000_123, $job->createdAt);
        self::assertSame('tok', $job->leaseToken);
        self::assertSame(1_795_000_030_123, $job->leaseDeadline);
    }

    public function testTheBlockTimeIsLongPolledInOneSecondSlices(): void
    {
        $this->http->responses = array_fill(0, 3, new HttpResponse(204, ''));

        self::assertNull($this->transport(['emails'], blockMs: 2500)->reserve(), 'no job is a 204');
        self::assertSame([1000, 1000, 500], array_map(
            static fn (array $request) => $request['body']['wait_ms'],
            $this->http->requests,
        ));
    }

    public function testAStopRequestedDuringALongPollEndsTheWait(): void
    {
        $stop = new StopRequest();
        $this->http->responses = array_fill(0, 3, new HttpResponse(204, ''));
        $this->http->onRequest = static fn () => $stop->request();

        self::assertNull($this->transport(['emails'], stop: $stop)->reserve());
        self::assertCount(1, $this->http->requests, 'no poll after the signal');
    }

    public function testSeveralQueuesAreTriedInOrderThenLongPolledInTurn(): void
    {
        $this->http->responses = array_fill(0, 3, new HttpResponse(204, ''));
        $this->http->responses[] = FakeHttpClient::json(200, self::reservation());
        $job = $this->transport(['high', 'low'])->reserve();

        self::assertSame('j1', $job?->id);
        self::assertSame(
            [['high', 0], ['low', 0], ['high', 500], ['low', 500]],
            array_map(
                static fn (array $request) => [explode('/', $request['url'])[5], $request['body']['wait_ms']],
                $this->http->requests,
            ),
        );
    }

    public function testOneReserveWaitsNoLongerThanTheGatewaysLongestPoll(): void
    {
        $this->http->responses = array_fill(0, 31, new HttpResponse(204, ''));
        $this->transport(['emails'], blockMs: 120_000)->reserve();

        self::assertSame(30_000, array_sum(array_map(
            static fn (array $request) => $request['body']['wait_ms'],
            $this->http->requests,
        )));
    }

    public function testAckSendsTheResultAsJsonAndTheJobsRequestId(): void
    {
        $this->http->responses = [FakeHttpClient::json(200, ['id' => 'j9', 'state' => 'succeeded'])];
        self::assertTrue($this->transport()->ack(Jobs::make(id: 'j9'), '{"sent":true,"tags":{}}'));

        $request = $this->http->requests[0];
        self::assertSame('http://gw:3000/v1/queues/q/jobs/j9:ack', $request['url']);
        self::assertSame('{"lease_token":"token-j9","result":{"sent":true,"tags":{}}}', $request['raw']);
        self::assertSame('req-j9', $request['headers']['X-Request-ID']);
    }

    public function testAckWithoutAResultOmitsIt(): void
    {
        $this->http->responses = [FakeHttpClient::json(200, ['state' => 'succeeded'])];
        $this->transport()->ack(Jobs::make(), null);

        self::assertSame(['lease_token' => 'token-job-1'], $this->http->requests[0]['body']);
    }

    public function testAckAndReserveLeasesTheNextJobInTheSameRequest(): void
    {
        $this->http->responses = [
            FakeHttpClient::json(200, ['id' => 'j9', 'state' => 'succeeded', 'next' => self::reservation()]),
        ];
        $acked = $this->transport(['q'])->ackAndReserve(Jobs::make(id: 'j9'), '{"sent":true}');

        self::assertTrue($acked->leaseHeld);
        self::assertSame('j1', $acked->next?->id);
        self::assertSame('tok', $acked->next->leaseToken);
        self::assertSame('{"to":"ada","opts":{}}', $acked->next->payloadJson);
        self::assertCount(1, $this->http->requests);
        self::assertSame('http://gw:3000/v1/queues/q/jobs/j9:ack', $this->http->requests[0]['url']);
        $token = $this->http->requests[0]['body']['reserve']['lease_token'] ?? '';
        self::assertMatchesRegularExpression('/^[0-9a-f]{32}$/', $token);
        self::assertSame(
            '{"lease_token":"token-j9","result":{"sent":true},"reserve":{"worker":"box:1","lease_ms":30000,'
                . "\"lease_token\":\"{$token}\"}}",
            $this->http->requests[0]['raw'],
        );
    }

    public function testAReservationKeepsItsTokenUntilAnAnswerBringsAJob(): void
    {
        $this->http->responses = [
            new HttpResponse(204, ''),
            new Unavailable('Empty reply from server'),
            FakeHttpClient::json(200, self::reservation()),
            new HttpResponse(204, ''),
        ];
        $transport = $this->transport(['emails'], blockMs: 1000);
        $transport->reserve();
        $transport->reserve();
        $transport->reserve();
        $transport->reserve();

        $tokens = array_map(
            static fn (array $request): string => $request['body']['lease_token'],
            $this->http->requests,
        );
        self::assertSame($tokens[0], $tokens[1], 'a 204 leased nothing');
        self::assertSame($tokens[1], $tokens[2], 'a reserve with no answer goes again as it was');
        self::assertNotSame($tokens[2], $tokens[3], 'a token that brought a job is not used again');
    }

    public function testALaterQueueWhoseReserveGotNoAnswerIsAskedFirstWithTheSameToken(): void
    {
        $this->http->responses = [
            new HttpResponse(204, ''),
            new Unavailable('Empty reply from server'),
            FakeHttpClient::json(200, self::reservation()),
        ];
        $transport = $this->transport(['high', 'low']);

        self::assertNull($transport->reserve());
        self::assertSame('j1', $transport->reserve()?->id);
        [, $lost, $again] = $this->http->requests;
        self::assertSame('http://gw:3000/v1/queues/low/jobs:reserve', $again['url']);
        self::assertSame($lost['body']['lease_token'], $again['body']['lease_token']);
        self::assertSame(0, $again['body']['wait_ms']);
    }

    public function testLeasedUnansweredAsksTheQueueWhoseReserveGotNoAnswerOnceWithoutWaiting(): void
    {
        $this->http->responses = [
            new HttpResponse(204, ''),
            new Unavailable('Empty reply from server'),
            FakeHttpClient::json(200, self::reservation()),
        ];
        $transport = $this->transport(['high', 'low']);

        self::assertNull($transport->leasedUnanswered(), 'nothing unanswered yet: nothing asked');
        self::assertCount(0, $this->http->requests);
        self::assertNull($transport->reserve());
        self::assertSame('j1', $transport->leasedUnanswered()?->id);
        [, $lost, $again] = $this->http->requests;
        self::assertSame('http://gw:3000/v1/queues/low/jobs:reserve', $again['url']);
        self::assertSame($lost['body']['lease_token'], $again['body']['lease_token']);
        self::assertSame(0, $again['body']['wait_ms']);
        self::assertNull($transport->leasedUnanswered());
        self::assertCount(3, $this->http->requests);
    }

    public function testAnAckAnsweredWithoutNextLeavesTheFirstQueuesReserveUnanswered(): void
    {
        $this->http->responses = [
            FakeHttpClient::json(200, ['id' => 'j9', 'state' => 'succeeded']),
            FakeHttpClient::json(200, self::reservation()),
        ];
        $transport = $this->transport(['high', 'low']);
        $acked = $transport->ackAndReserve(Jobs::make(id: 'j9', queue: 'high'), null);
        $next = $transport->reserve();

        self::assertTrue($acked->leaseHeld);
        self::assertNull($acked->next);
        self::assertSame('j1', $next?->id);
        self::assertSame('http://gw:3000/v1/queues/high/jobs:reserve', $this->http->requests[1]['url']);
        self::assertSame(
            $this->http->requests[0]['body']['reserve']['lease_token'],
            $this->http->requests[1]['body']['lease_token'],
            'the gateway could not ask Redis: the reserve may have run under that token',
        );
    }

    public function testTheReserveOfAnAckWhoseAnswerWasLostGoesAgainWithItsToken(): void
    {
        $this->http->responses = [
            new Unavailable('Empty reply from server'),
            FakeHttpClient::json(409, ['code' => 'LEASE_LOST', 'state' => 'succeeded', 'ended_as' => 'succeeded']),
            FakeHttpClient::json(200, self::reservation()),
        ];
        $transport = $this->transport(['q']);
        $acked = $transport->ackAndReserve(Jobs::make(id: 'j9'), null);
        $next = $transport->reserve();

        self::assertTrue($acked->leaseHeld);
        self::assertNull($acked->next);
        self::assertSame('j1', $next?->id, 'the job the lost answer carried');
        self::assertSame(
            $this->http->requests[0]['body']['reserve']['lease_token'],
            $this->http->requests[2]['body']['lease_token'],
        );
    }

    public function testALostLeaseThatThisLeasesOwnCallEndedCountsAsDoneEvenOnAFirstTry(): void
    {
        // libcurl sends a request again by itself when a kept connection dies before the answer.
        $this->http->responses = [
            FakeHttpClient::json(409, ['code' => 'LEASE_LOST', 'state' => 'active', 'ended_as' => 'scheduled']),
            FakeHttpClient::json(409, ['code' => 'LEASE_LOST', 'state' => 'succeeded']),
            new Unavailable('Connection reset'),
            FakeHttpClient::json(409, ['code' => 'LEASE_LOST', 'state' => 'succeeded']),
        ];
        $transport = $this->transport(['q']);

        self::assertSame(
            RetryOutcome::Scheduled,
            $transport->retry(Jobs::make(id: 'j9'), 'm', 'c', null),
            'what the copy that landed did, though the job has run on since',
        );
        self::assertFalse($transport->ack(Jobs::make(id: 'j9'), null), 'another lease ended it');
        self::assertFalse(
            $transport->ack(Jobs::make(id: 'j9'), null),
            'a try that may have landed proves nothing: the gateway did not say it was this lease',
        );
    }

    /** @dataProvider malformedNextJobs */
    public function testAMalformedNextJobIsAsNoAnswerSoTheAckIsSentAgain(mixed $next, string $message): void
    {
        $this->http->responses = [
            FakeHttpClient::json(200, ['id' => 'j9', 'state' => 'succeeded', 'next' => $next]),
            FakeHttpClient::json(409, ['code' => 'LEASE_LOST', 'state' => 'succeeded', 'ended_as' => 'succeeded']),
        ];
        $acked = $this->transport(['q'])->ackAndReserve(Jobs::make(id: 'j9'), null);

        self::assertTrue($acked->leaseHeld, 'the ack sent again finds its job succeeded');
        self::assertNull($acked->next);
        self::assertCount(2, $this->http->requests);
        self::assertSame([100], $this->clock->sleeps);
        $line = $this->logs->first('gateway unavailable, retrying');
        self::assertStringContainsString($message, (string) $line['error']);
        self::assertSame('j9', $line['job_id'] ?? null, 'the wait names the job whose outcome waits');
    }

    /** @return array<string, array{mixed, string}> */
    public static function malformedNextJobs(): array
    {
        return [
            'not an object' => ['oops', 'a next job that is not a reservation'],
            'no lease' => [['job' => ['id' => 'j1']], 'without a reservation'],
        ];
    }

    public function testAckAndReserveWithNothingReadyOrTheLeaseLostLeasesNothing(): void
    {
        $this->http->responses = [
            FakeHttpClient::json(200, ['id' => 'j9', 'state' => 'succeeded', 'next' => null]),
            FakeHttpClient::json(409, ['code' => 'LEASE_LOST', 'state' => 'active']),
        ];
        $empty = $this->transport(['q'])->ackAndReserve(Jobs::make(id: 'j9'), null);
        $lost = $this->transport(['q'])->ackAndReserve(Jobs::make(id: 'j9'), null);

        self::assertTrue($empty->leaseHeld);
        self::assertNull($empty->next);
        self::assertFalse($lost->leaseHeld);
        self::assertNull($lost->next);
    }

    public function testAnAckAndReserveWhoseAnswerWasLostIsDoneWithoutANextJob(): void
    {
        $this->http->responses = [
            new Unavailable('Connection reset'),
            FakeHttpClient::json(409, ['code' => 'LEASE_LOST', 'state' => 'succeeded', 'ended_as' => 'succeeded']),
        ];
        $acked = $this->transport(['q'])->ackAndReserve(Jobs::make(id: 'j9'), null);

        self::assertTrue($acked->leaseHeld, 'the first try reached the gateway');
        self::assertNull($acked->next);
        self::assertCount(2, $this->http->requests);
    }

    public function testAJobOfALaterQueueIsJustAcked(): void
    {
        $this->http->responses = [FakeHttpClient::json(200, ['id' => 'j9', 'state' => 'succeeded'])];
        $acked = $this->transport(['high', 'low'])->ackAndReserve(Jobs::make(id: 'j9', queue: 'low'), null);

        self::assertTrue($acked->leaseHeld);
        self::assertNull($acked->next);
        self::assertSame('http://gw:3000/v1/queues/low/jobs/j9:ack', $this->http->requests[0]['url']);
        self::assertSame(['lease_token' => 'token-j9'], $this->http->requests[0]['body']);
    }

    public function testFailRetryAndHeartbeatBodies(): void
    {
        $this->http->responses = [
            FakeHttpClient::json(200, ['state' => 'dead']),
            FakeHttpClient::json(200, ['state' => 'scheduled']),
            FakeHttpClient::json(200, ['state' => 'dead']),
            FakeHttpClient::json(200, ['state' => 'active']),
            FakeHttpClient::json(200, ['state' => 'expired']),
        ];
        $transport = $this->transport();

        self::assertTrue($transport->fail(Jobs::make(), 'bad address', 'App\\Invalid'));
        self::assertSame(RetryOutcome::Scheduled, $transport->retry(Jobs::make(), 'boom', 'E', null));
        self::assertSame(RetryOutcome::Dead, $transport->retry(Jobs::make(), 'boom', 'E', 250));
        self::assertTrue($transport->heartbeat(Jobs::make(), 30_000, '{"pct":5}'));
        self::assertSame(RetryOutcome::Expired, $transport->retry(Jobs::make(), 'boom', 'E', 250));

        [$fail, $retry, $delayed, $heartbeat] = array_column($this->http->requests, 'body');
        self::assertSame(
            ['lease_token' => 'token-job-1', 'error' => ['message' => 'bad address', 'class' => 'App\\Invalid']],
            $fail,
        );
        self::assertSame(['lease_token' => 'token-job-1', 'error' => ['message' => 'boom', 'class' => 'E']], $retry);
        self::assertSame(250, $delayed['delay_ms']);
        self::assertSame(['lease_token' => 'token-job-1', 'lease_ms' => 30000, 'progress' => ['pct' => 5]], $heartbeat);
        self::assertStringEndsWith(':heartbeat', $this->http->requests[3]['url']);
    }

    public function testLeaseLostAndJobNotFoundMeanTheLeaseWasNotHeld(): void
    {
        $lost = FakeHttpClient::json(409, ['code' => 'LEASE_LOST', 'state' => 'queued']);
        $gone = FakeHttpClient::json(404, ['code' => 'JOB_NOT_FOUND']);
        $this->http->responses = [$lost, $gone, $lost, $lost];
        $transport = $this->transport();

        self::assertFalse($transport->ack(Jobs::make(), null));
        self::assertFalse($transport->fail(Jobs::make(), 'm', 'c'));
        self::assertSame(RetryOutcome::LeaseLost, $transport->retry(Jobs::make(), 'm', 'c', null));
        self::assertFalse($transport->heartbeat(Jobs::make(), 30_000));
    }

    public function testAnUnavailableGatewayIsRetriedWithBackoffHonouringRetryAfter(): void
    {
        $this->http->responses = [
            new Unavailable('Connection refused'),
            FakeHttpClient::json(
                503,
                ['code' => 'REDIS_UNAVAILABLE', 'detail' => 'Redis is down'],
                ['retry-after' => '2'],
            ),
            FakeHttpClient::json(200, ['state' => 'succeeded']),
        ];
        self::assertTrue($this->transport()->ack(Jobs::make(), null));

        self::assertSame([100, 2000], $this->clock->sleeps);
        self::assertCount(2, array_filter(
            $this->logs->all(),
            static fn ($line) => $line['msg'] === 'gateway unavailable, retrying',
        ));
    }

    public function testAReserveAgainstAnUnavailableGatewayReturnsNothing(): void
    {
        $this->http->responses = [FakeHttpClient::json(502, [])];

        self::assertNull($this->transport(['emails'])->reserve());
        self::assertSame([100], $this->clock->sleeps);
    }

    public function testOtherClientErrorsAreBugs(): void
    {
        $this->http->responses = [FakeHttpClient::json(405, ['code' => 'METHOD_NOT_ALLOWED', 'detail' => 'no POST'])];

        $this->expectException(GatewayError::class);
        $this->expectExceptionMessage('fail: the gateway answered 405 METHOD_NOT_ALLOWED: no POST');
        $this->transport()->fail(Jobs::make(), 'm', 'c');
    }

    /** @dataProvider refusedErrorReports */
    public function testAnErrorReportTheGatewayRefusesGoesAgainWithTheStartOfItsMessage(int $status, string $code): void
    {
        $this->http->responses = [
            FakeHttpClient::json($status, ['code' => $code, 'detail' => 'too much']),
            FakeHttpClient::json(200, ['state' => 'dead']),
            FakeHttpClient::json($status, ['code' => $code, 'detail' => 'too much']),
            FakeHttpClient::json(200, ['state' => 'scheduled']),
        ];
        $message = str_repeat('é', 4000);
        $transport = $this->transport();

        self::assertTrue($transport->fail(Jobs::make(), $message, 'App\\Invalid'));
        self::assertSame(RetryOutcome::Scheduled, $transport->retry(Jobs::make(), $message, 'E', 500));

        [$fail, $shortFail, $retry, $shortRetry] = array_column($this->http->requests, 'body');
        self::assertSame($message, $fail['error']['message']);
        self::assertSame($message, $retry['error']['message']);
        $start = str_repeat('é', 128);
        self::assertSame(
            "the gateway refused the fail: {$status} {$code}: too much; the message began: {$start}",
            $shortFail['error']['message'],
        );
        self::assertSame('App\\Invalid', $shortFail['error']['class']);
        self::assertSame(
            "the gateway refused the retry: {$status} {$code}: too much; the message began: {$start}",
            $shortRetry['error']['message'],
        );
        self::assertSame(500, $shortRetry['delay_ms'], 'the rest of the retry as it was');
    }

    public function testTheShortReportStaysShortWhenItsBytesAreEscapedInJson(): void
    {
        $this->http->responses = [
            FakeHttpClient::json(413, ['code' => 'PAYLOAD_TOO_LARGE', 'detail' => 'too much']),
            FakeHttpClient::json(200, ['state' => 'dead']),
        ];

        self::assertTrue($this->transport()->fail(Jobs::make(), str_repeat("\x01", 4000), 'E'));
        $short = $this->http->requests[1]['body']['error']['message'];
        $reason = 'the gateway refused the fail: 413 PAYLOAD_TOO_LARGE: too much; the message began: ';
        self::assertStringStartsWith($reason, $short);
        $start = substr($short, strlen($reason));
        self::assertLessThanOrEqual(258, strlen(json_encode($start)));
        self::assertSame(str_repeat("\x01", strlen($start)), $start);
    }

    /** @return array<string, array{int, string}> */
    public static function refusedErrorReports(): array
    {
        return [
            'over the body limit' => [413, 'PAYLOAD_TOO_LARGE'],
            'not JSON the gateway takes' => [400, 'INVALID_JSON'],
        ];
    }

    public function testAGatewayThatTimedTheRequestOutIsUnavailableNotABug(): void
    {
        $this->http->responses = [
            FakeHttpClient::json(408, ['code' => 'REQUEST_TIMEOUT', 'detail' => 'slow']),
            FakeHttpClient::json(200, ['state' => 'succeeded']),
        ];

        self::assertTrue($this->transport()->ack(Jobs::make(), null));
        self::assertCount(2, $this->http->requests, 'sent again');
    }

    /** @dataProvider refusedKeys */
    public function testARefusedApiKeyIsABugEvenOnAnAck(int $status, string $code): void
    {
        $this->http->responses = [FakeHttpClient::json($status, ['code' => $code, 'detail' => 'no'])];

        $this->expectException(GatewayError::class);
        $this->expectExceptionMessage("ack: the gateway answered {$status} {$code}: no");
        $this->transport()->ack(Jobs::make(), null);
    }

    /** @return array<string, array{int, string}> */
    public static function refusedKeys(): array
    {
        return ['401' => [401, 'INVALID_API_KEY'], '403' => [403, 'FORBIDDEN']];
    }

    public function testAResultTooLargeForTheGatewayIsARejectedOutcome(): void
    {
        $this->http->responses = [
            FakeHttpClient::json(413, ['code' => 'PAYLOAD_TOO_LARGE', 'detail' => 'Request body is too large']),
        ];

        $this->expectException(OutcomeRejected::class);
        $this->expectExceptionMessage('the gateway refused the ack: 413 PAYLOAD_TOO_LARGE: Request body is too large');
        $this->transport(['q'])->ackAndReserve(Jobs::make(), '"' . str_repeat('x', 100) . '"');
    }

    public function testAResultWithAKeyTheGatewayTakesForPrototypePoisoningIsARejectedOutcome(): void
    {
        $this->http->responses = [
            FakeHttpClient::json(400, ['code' => 'INVALID_JSON', 'detail' => 'forbidden prototype property']),
        ];

        $this->expectException(OutcomeRejected::class);
        $this->expectExceptionMessage('the gateway refused the ack: 400 INVALID_JSON: forbidden prototype property');
        $this->transport()->ack(Jobs::make(), '{"__proto__":1}');
    }

    /** @dataProvider refusedProgress */
    public function testProgressTheGatewayRefusesForItsSizeIsRejected(int $status, string $code): void
    {
        $this->http->responses = [FakeHttpClient::json($status, ['code' => $code, 'detail' => 'too long'])];

        try {
            $this->transport()->heartbeat(Jobs::make(), 30_000, '"' . str_repeat('x', 100) . '"');
            self::fail('no ProgressRejected');
        } catch (ProgressRejected $rejected) {
            self::assertSame("the gateway refused the progress: {$status} {$code}: too long", $rejected->getMessage());
        }
        self::assertCount(1, $this->http->requests, 'not sent again');
    }

    /** @return array<string, array{int, string}> */
    public static function refusedProgress(): array
    {
        return [
            'over the protocol limit' => [413, 'PROGRESS_TOO_LARGE'],
            'over the body limit' => [413, 'PAYLOAD_TOO_LARGE'],
            'not JSON the gateway takes' => [400, 'INVALID_JSON'],
        ];
    }

    public function testARetryTheGatewayFindsInvalidIsARejectedOutcome(): void
    {
        $invalid = FakeHttpClient::json(400, [
            'code' => 'VALIDATION_FAILED',
            'detail' => 'body/delay_ms must be <= 31536000000',
        ]);
        $this->http->responses = [$invalid, $invalid];

        $this->expectException(OutcomeRejected::class);
        $this->expectExceptionMessage('the gateway refused the retry: 400 VALIDATION_FAILED: body/delay_ms must be');
        $this->transport()->retry(Jobs::make(), 'm', 'c', 1);
    }

    /** @dataProvider settlementsThatAreNotTheGateways */
    public function testASuccessWithoutTheJobsStateIsAsNoAnswerAndTheCallIsSentAgain(HttpResponse $answer): void
    {
        $lostAfterSuccess = static fn (string $state) => FakeHttpClient::json(
            409,
            ['code' => 'LEASE_LOST', 'state' => $state, 'ended_as' => $state],
        );
        $this->http->responses = [
            $answer, $lostAfterSuccess('succeeded'),
            $answer, $lostAfterSuccess('dead'),
            $answer, $lostAfterSuccess('scheduled'),
        ];
        $transport = $this->transport();

        self::assertTrue($transport->ack(Jobs::make(), null), 'the ack landed the first time');
        self::assertTrue($transport->fail(Jobs::make(), 'm', 'c'));
        self::assertSame(RetryOutcome::Scheduled, $transport->retry(Jobs::make(), 'm', 'c', null));
        self::assertCount(6, $this->http->requests);
        self::assertSame([100, 100, 100], $this->clock->sleeps);
        self::assertStringContainsString(
            "ack: the gateway answered {$answer->status} without the job's state",
            (string) $this->logs->first('gateway unavailable, retrying')['error'],
        );
    }

    public function testAnAckOfASuccessWithoutTheJobsStateIsNotCountedUntilTheGatewayConfirmsIt(): void
    {
        $html = new HttpResponse(200, '<html>proxy</html>');
        $this->http->responses = [$html, $html, FakeHttpClient::json(200, ['state' => 'succeeded'])];

        self::assertTrue($this->transport()->ack(Jobs::make(), null));
        self::assertCount(3, $this->http->requests);
        self::assertSame([100, 200], $this->clock->sleeps);
    }

    /** @dataProvider answersThatAreNotTheGateways */
    public function testAReserveAnsweredWithoutAReservationIsAsNoAnswer(HttpResponse $answer): void
    {
        $this->http->responses = [$answer];

        self::assertNull($this->transport(['emails'])->reserve());
        self::assertSame([100], $this->clock->sleeps);
        self::assertStringContainsString(
            "the gateway answered {$answer->status} without a reservation",
            (string) $this->logs->first('gateway unavailable, retrying')['error'],
        );
    }

    /** @dataProvider settlementsThatAreNotTheGateways */
    public function testAHeartbeatAnsweredWithoutTheJobsStateIsLoggedAndCountsAsHeld(HttpResponse $answer): void
    {
        $this->http->responses = [$answer];

        self::assertTrue($this->transport()->heartbeat(Jobs::make(), 30_000));
        $note = $this->logs->first('heartbeat not sent, server unavailable');
        self::assertSame(Jobs::make()->id, $note['job_id'] ?? null, 'the line names the job');
        self::assertSame([], $this->clock->sleeps, 'a heartbeat is not retried');
    }

    /** @return array<string, array{HttpResponse}> */
    public static function answersThatAreNotTheGateways(): array
    {
        return [
            'an HTML page' => [new HttpResponse(200, '<html><body>Welcome to our proxy</body></html>')],
            'an empty object' => [new HttpResponse(200, '{}')],
            'a cut body' => [new HttpResponse(200, '{"id":"job-1","sta')],
        ];
    }

    /** @return array<string, array{HttpResponse}> */
    public static function settlementsThatAreNotTheGateways(): array
    {
        return self::answersThatAreNotTheGateways() + ['no body' => [new HttpResponse(204, '')]];
    }

    public function testAfterAnAckFoundTheFirstQueueEmptyTheNextReserveStartsAtTheSecond(): void
    {
        $this->http->responses = [
            FakeHttpClient::json(200, ['id' => 'j9', 'state' => 'succeeded', 'next' => null]),
            FakeHttpClient::json(200, self::reservation()),
            new HttpResponse(204, ''),
            FakeHttpClient::json(200, self::reservation()),
        ];
        $transport = $this->transport(['high', 'low']);

        self::assertNull($transport->ackAndReserve(Jobs::make(id: 'j9', queue: 'high'), null)->next);
        self::assertSame('j1', $transport->reserve()?->id);
        self::assertSame('j1', $transport->reserve()?->id, 'only the reserve right after the ack skips it');
        self::assertSame(
            [['high', null], ['low', 0], ['high', 0], ['low', 0]],
            array_map(
                static fn (array $request) => [explode('/', $request['url'])[5], $request['body']['wait_ms'] ?? null],
                $this->http->requests,
            ),
        );
    }

    public function testAnAckWhoseAnswerWasLostLeavesTheNextReserveStartingAtTheFirstQueue(): void
    {
        $this->http->responses = [
            new Unavailable('Connection reset'),
            FakeHttpClient::json(409, ['code' => 'LEASE_LOST', 'state' => 'succeeded', 'ended_as' => 'succeeded']),
            FakeHttpClient::json(200, self::reservation()),
        ];
        $transport = $this->transport(['high', 'low']);
        $transport->ackAndReserve(Jobs::make(id: 'j9', queue: 'high'), null);
        $transport->reserve();

        self::assertStringContainsString('/queues/high/', $this->http->requests[2]['url']);
    }

    public function testAWrongGatewayUrlIsABugNotALostLease(): void
    {
        $this->http->responses = [FakeHttpClient::json(404, ['code' => 'ROUTE_NOT_FOUND'])];

        $this->expectException(GatewayError::class);
        $this->transport()->ack(Jobs::make(), null);
    }

    /** @param non-empty-list<string> $queues */
    private function transport(array $queues = ['q'], int $blockMs = 3000, ?StopRequest $stop = null): HttpTransport
    {
        return new HttpTransport(
            $this->http,
            new HttpTransportOptions(
                gatewayUrl: 'http://gw:3000/',
                queues: $queues,
                workerId: 'box:1',
                leaseMs: 30_000,
                blockMs: $blockMs,
                apiKey: 'k3y',
            ),
            new Retrier($this->logs->logger, $this->clock, 'gateway unavailable, retrying'),
            $stop ?? new StopRequest(),
        );
    }

    /** @return array<string, mixed> */
    private static function reservation(): array
    {
        return [
            'job' => [
                'id' => 'j1', 'queue' => 'emails', 'type' => 'send',
                'payload' => ['to' => 'ada', 'opts' => new \stdClass()],
                'attempts' => 2, 'max_attempts' => 3, 'timeout_ms' => 1500, 'request_id' => 'req-1',
                'created_at' => '2026-11-18T11:06:40.123Z', 'priority' => 5,
            ],
            'lease' => ['token' => 'tok', 'deadline' => '2026-11-18T11:07:10.123Z'],
        ];
    }
}
