<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Fakes;

use Jobgate\Worker\StopRequest;

/** A StopRequest that records its sleeps instead of sleeping, and can be asked to stop during one. */
final class RecordingStopRequest extends StopRequest
{
    /** @var list<int> */
    public array $sleeps = [];

    /** The sleep (1-based) during which a quit signal "arrives"; 0 = none. */
    public int $signalDuringSleep = 0;

    public function sleepMs(int $ms): void
    {
        $this->sleeps[] = $ms;
        if (count($this->sleeps) === $this->signalDuringSleep) {
            $this->request();
        }
    }
}
