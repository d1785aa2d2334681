<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport;

use RuntimeException;
use Throwable;

/**
 * The server (Redis or the gateway) cannot serve the call now: try again after a back-off.
 */
final class Unavailable extends RuntimeException
{
    /**
     * @param int|null $retryAfterMs how long the server asked us to wait (HTTP `Retry-After`)
     */
    public function __construct(
        string $message,
        public readonly ?int $retryAfterMs = null,
        ?Throwable $previous = null,
    ) {
        parent::__construct($message, 0, $previous);
    }
}
