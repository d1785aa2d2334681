<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Http;

use Jobgate\Worker\Transport\Transport;

final class HttpTransportOptions
{
    /** The longest long poll the gateway accepts (ReserveRequest.wait_ms). */
    public const MAX_WAIT_MS = 30_000;

    /**
     * @param string $gatewayUrl base URL, e.g. http://127.0.0.1:3000
     * @param non-empty-list<string> $queues in priority order
     * @param int $blockMs longest wait for work per reserve
     */
    public function __construct(
        public readonly string $gatewayUrl,
        public readonly array $queues,
        public readonly string $workerId,
        public readonly int $leaseMs,
        public readonly int $blockMs,
        public readonly ?string $apiKey = null,
        public readonly int $requestTimeoutMs = 15_000,
    ) {
    }

    /** The longest a reserve's answer is waited for: its longest long poll, plus the request time. */
    public function replyTimeoutMs(): int
    {
        return min($this->blockMs, Transport::IDLE_WAIT_SLICE_MS) + $this->requestTimeoutMs;
    }
}
