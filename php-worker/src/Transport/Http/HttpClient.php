<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Http;

use Jobgate\Worker\Transport\Unavailable;

interface HttpClient
{
    /**
     * POSTs a JSON body.
     *
     * @param array<string, string> $headers
     * @throws Unavailable when no response came (connection refused, reset, timed out)
     */
    public function postJson(string $url, string $body, array $headers, int $timeoutMs): HttpResponse;
}
