<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport;

use Jobgate\Worker\Job;

/**
 * What Transport::ackAndReserve() did: the ack's answer, and the job leased along with it.
 */
final class AckAndNext
{
    /**
     * @param bool $leaseHeld the ack's answer, as Transport::ack() gives it
     * @param Job|null $next a job now leased to this worker, which it must run; null = none leased
     */
    public function __construct(
        public readonly bool $leaseHeld,
        public readonly ?Job $next,
    ) {
    }
}
