<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests;

use Jobgate\Worker\StopRequest;
use PHPUnit\Framework\TestCase;

/** The stop flag, with real signals sent to this process. */
final class StopRequestTest extends TestCase
{
    protected function tearDown(): void
    {
        pcntl_sigprocmask(SIG_UNBLOCK, StopRequest::SIGNALS);
    }

    public function testAQuitSignalHeldBackCountsAndIsTaken(): void
    {
        pcntl_sigprocmask(SIG_BLOCK, StopRequest::SIGNALS);
        $stop = new StopRequest();
        self::assertFalse($stop->isRequested());

        posix_kill(getmypid(), SIGTERM);

        self::assertTrue($stop->isRequested(), 'pending while held back, and seen');
        $info = [];
        self::assertSame(-1, pcntl_sigtimedwait(StopRequest::SIGNALS, $info, 0, 0), 'no longer pending');
    }

    public function testNothingPendingIsNoStop(): void
    {
        pcntl_sigprocmask(SIG_BLOCK, StopRequest::SIGNALS);
        $stop = new StopRequest();

        self::assertFalse($stop->isRequested());
        $stop->request();
        self::assertTrue($stop->isRequested());
    }
}
