<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport;

use RuntimeException;

/**
 * A call gave up waiting for its server because the worker was asked to stop: its effect (an
 * ack, a retry) was not recorded, and the job runs again once its lease runs out.
 */
final class StopRequested extends RuntimeException
{
    public function __construct(Unavailable $lastFailure)
    {
        parent::__construct('stopping while unavailable: ' . $lastFailure->getMessage(), 0, $lastFailure);
    }
}
