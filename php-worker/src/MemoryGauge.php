<?php

declare(strict_types=1);

namespace Jobgate\Worker;

interface MemoryGauge
{
    /** Memory the process holds, in bytes. */
    public function usedBytes(): int;
}
