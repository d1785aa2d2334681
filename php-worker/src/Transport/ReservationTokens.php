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

    /** The queue of the last reserve sent, until its reply is read. */
    private ?string $unanswered = null;

    /** The token for a reserve on $queue about to be sent. */
    public function for(string $queue): string
    {
        $this->unanswered = $queue;

        return $this->tokens[$queue] ??= bin2hex(random_bytes(16));
    }

    /** The reply of a reserve on $queue was read; a job came with it or not. */
    public function answered(string $queue, bool $broughtJob): void
    {
        if ($this->unanswered === $queue) {
            $this->unanswered = null;
        }
        if ($broughtJob) {
            unset($this->tokens[$queue]);
        }
    }

    /**
     * The queue whose last reserve got no reply: ask it first, or a job it may have leased waits
     * out its lease while the queues before it keep the worker busy.
     */
    public function unanswered(): ?string
    {
        return $this->unanswered;
    }
}
