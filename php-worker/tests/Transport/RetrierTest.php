<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Transport;

use Closure;
use Jobgate\Worker\Tests\Fakes\FakeClock;
use Jobgate\Worker\Tests\Fakes\LogLines;
use Jobgate\Worker\Tests\Fakes\RecordingStopRequest;
use Jobgate\Worker\Transport\Backoff;
use Jobgate\Worker\Transport\Retrier;
use Jobgate\Worker\Transport\StopRequested;
use Jobgate\Worker\Transport\Unavailable;
use PHPUnit\Framework\TestCase;

final class RetrierTest extends TestCase
{
    private FakeClock $clock;
    private RecordingStopRequest $stop;
    /** Tries of the call so far. */
    private int $tries = 0;

    protected function setUp(): void
    {
        $this->clock = new FakeClock();
        $this->stop = new RecordingStopRequest();
    }

    public function testWithoutAStopRequestItRetriesUntilTheServerAnswers(): void
    {
        $result = $this->retrier()->untilAvailable($this->failing(times: 3));

        self::assertSame('answered', $result);
        self::assertSame(4, $this->tries);
        self::assertSame([100, 200, 400], $this->stop->sleeps, 'back-off waits go through the stop request');
        self::assertSame([], $this->clock->sleeps);
    }

    public function testAStopDuringABackoffGivesUpAfterOneMoreTry(): void
    {
        $this->stop->signalDuringSleep = 3;

        try {
            $this->retrier()->untilAvailable($this->failing(times: 10));
            self::fail('no StopRequested');
        } catch (StopRequested $stopped) {
            self::assertInstanceOf(Unavailable::class, $stopped->getPrevious());
            self::assertStringContainsString('Connection refused', $stopped->getMessage());
        }
        self::assertSame(4, $this->tries, 'the try after the interrupted wait is the last');
        self::assertSame([100, 200, 400], $this->stop->sleeps);
    }

    public function testAStopRequestedBeforeTheOutageStillGivesTheCallASecondTry(): void
    {
        $this->stop->request();

        $this->expectException(StopRequested::class);
        try {
            $this->retrier()->untilAvailable($this->failing(times: 10));
        } finally {
            self::assertSame(2, $this->tries);
            self::assertSame([100], $this->stop->sleeps);
        }
    }

    public function testAStopRequestedBeforeTheOutageLetsACallThatRecoversFinish(): void
    {
        $this->stop->request();

        self::assertSame('answered', $this->retrier()->untilAvailable($this->failing(times: 1)));
        self::assertSame(2, $this->tries);
    }

    public function testATryThatFailedInAPipelineCountsAsTheFirst(): void
    {
        $this->stop->request();

        $this->expectException(StopRequested::class);
        try {
            $this->retrier()->untilAvailable($this->failing(times: 10), new Unavailable('read error on connection'));
        } finally {
            self::assertSame(1, $this->tries, 'one more try, then the stop holds');
            self::assertSame([100], $this->stop->sleeps);
        }
    }

    public function testWithoutAStopRequestObjectItSleepsOnTheClock(): void
    {
        $retrier = new Retrier((new LogLines())->logger, $this->clock, 'down');

        self::assertSame('answered', $retrier->untilAvailable($this->failing(times: 2)));
        self::assertSame([100, 200], $this->clock->sleeps);
    }

    private function retrier(): Retrier
    {
        return new Retrier((new LogLines())->logger, $this->clock, 'down', new Backoff(), $this->stop);
    }

    /** A call that fails $times times with Unavailable, then answers. */
    private function failing(int $times): Closure
    {
        return function () use (&$times): string {
            $this->tries++;
            if ($times-- > 0) {
                throw new Unavailable('Connection refused');
            }

            return 'answered';
        };
    }
}
