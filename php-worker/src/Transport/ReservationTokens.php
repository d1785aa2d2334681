<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport;

/**
 * The lease token of the next reservation on each queue. A token stays until a reply brings a
 * job under it, so a reserve whose reply was lost goes again with the same token and gets the
 * job Redis leased to it, rather than another while that one waits out a lease nobody holds.
 */
final class ReservationTokens
{
    /** @var array<string, string> queue => token */
    private array $tokens = [];

    public function for(string $queue): string
    {
        return $this->tokens[$queue] ??= bin2hex(random_bytes(16));
    }

    /** A reply brought a job under the queue's token: the next reservation gets a new one. */
    public function spent(string $queue): void
    {
        unset($this->tokens[$queue]);
    }
}
