<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests;

use Jobgate\Worker\Logger;
use Jobgate\Worker\Tests\Fakes\Jobs;
use Jobgate\Worker\Tests\Fakes\LogLines;
use PHPUnit\Framework\TestCase;

final class LoggerTest extends TestCase
{
    public function testOneJsonObjectPerLineWithTheCommonFieldsFirst(): void
    {
        $logs = new LogLines('box:7');
        $logs->logger->info('job succeeded', Logger::jobFields(Jobs::make('echo', id: 'j1')) + ['duration_ms' => 12]);
        $logs->logger->warn('redis unavailable, reconnecting', ['error' => 'Connection refused']);

        $raw = $logs->raw();
        self::assertSame(2, substr_count($raw, "\n"));
        [$job, $outage] = $logs->all();
        self::assertSame(
            ['ts', 'level', 'msg', 'worker', 'queue', 'job_id', 'type', 'attempt', 'request_id', 'duration_ms'],
            array_keys($job),
        );
        self::assertMatchesRegularExpression('/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/', $job['ts']);
        self::assertSame('info', $job['level']);
        self::assertSame('box:7', $job['worker']);
        self::assertSame('q', $job['queue']);
        self::assertSame('j1', $job['job_id']);
        self::assertSame('echo', $job['type']);
        self::assertSame(1, $job['attempt']);
        self::assertSame('req-j1', $job['request_id']);
        self::assertSame(12, $job['duration_ms']);
        self::assertSame('warn', $outage['level']);
        self::assertSame('Connection refused', $outage['error']);
    }

    public function testALineIsWrittenEvenForValuesJsonCannotHold(): void
    {
        $logs = new LogLines();
        $logs->logger->error('job failed', ['error' => "bad \xB1 byte", 'ratio' => NAN]);

        $line = $logs->first('job failed');
        self::assertSame("bad \u{FFFD} byte", $line['error'] ?? null);
    }
}
