<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests;

use Jobgate\Worker\ErrorReport;
use Jobgate\Worker\Job;
use Jobgate\Worker\Json;
use PHPUnit\Framework\TestCase;
use RuntimeException;

final class JobTest extends TestCase
{
    public function testAJobFromTheFieldsOfAReserveReply(): void
    {
        $job = Job::fromReservation([
            'id' => 'j1', 'queue' => 'emails', 'type' => 'send', 'payload' => '{"to":"ada","tags":{}}',
            'attempts' => 2, 'max_attempts' => '5', 'timeout_ms' => '', 'request_id' => 'r-1',
            'created_at' => '1700000000000', 'priority' => '9', 'lease_token' => 'abc',
            'lease_deadline' => 1700000030000,
        ]);

        self::assertSame('j1', $job->id);
        self::assertSame('emails', $job->queue);
        self::assertSame('send', $job->type);
        self::assertSame(['to' => 'ada', 'tags' => []], $job->payload);
        self::assertSame('{"to":"ada","tags":{}}', $job->payloadJson);
        self::assertTrue($job->payloadValid);
        self::assertSame(2, $job->attempts);
        self::assertSame(5, $job->maxAttempts);
        self::assertNull($job->timeoutMs);
        self::assertSame('r-1', $job->requestId);
        self::assertSame(1_700_000_000_000, $job->createdAt);
        self::assertSame(9, $job->priority);
        self::assertSame('abc', $job->leaseToken);
        self::assertSame(1_700_000_030_000, $job->leaseDeadline);
    }

    public function testOptionalFields(): void
    {
        $job = Job::fromReservation(['id' => 'j', 'timeout_ms' => '5000', 'request_id' => '', 'payload' => 'nope']);

        self::assertSame(5000, $job->timeoutMs);
        self::assertNull($job->requestId);
        self::assertFalse($job->payloadValid);
        self::assertSame([], $job->payload);
    }

    public function testAnErrorReportKeepsTheClassAndAValidMessage(): void
    {
        $report = ErrorReport::fromThrowable(new RuntimeException(''));

        self::assertSame('(no message)', $report->message, 'the HTTP contract needs a non-empty message');
        self::assertSame(RuntimeException::class, $report->class);
        self::assertSame("a\u{FFFD}b", (new ErrorReport("a\xFFb", 'X'))->message);
    }

    public function testTruncationNeverSplitsACharacter(): void
    {
        self::assertSame('ab', Json::utf8Truncate('abé', 3));
        self::assertSame('abé', Json::utf8Truncate('abé', 4));
        self::assertSame('short', Json::utf8Truncate('short', 8192));
    }
}
