<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Fakes;

use Jobgate\Worker\Clock;

final class FakeClock implements Clock
{
    /** @var list<int> */
    public array $sleeps = [];

    public function __construct(public int $now = 1_000_000)
    {
    }

    public function nowMs(): int
    {
        return $this->now;
    }

    public function sleepMs(int $ms): void
    {
        $this->sleeps[] = $ms;
        $this->now += $ms;
    }

    public function advance(int $ms): void
    {
        $this->now += $ms;
    }
}
