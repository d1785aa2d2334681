<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Fakes;

use Jobgate\Worker\MemoryGauge;

final class FakeMemoryGauge implements MemoryGauge
{
    public function __construct(public int $bytes = 16 * 1024 * 1024)
    {
    }

    public function usedBytes(): int
    {
        return $this->bytes;
    }
}
