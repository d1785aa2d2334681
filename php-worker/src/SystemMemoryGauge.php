<?php

declare(strict_types=1);

namespace Jobgate\Worker;

final class SystemMemoryGauge implements MemoryGauge
{
    public function usedBytes(): int
    {
        return memory_get_usage(true);
    }
}
