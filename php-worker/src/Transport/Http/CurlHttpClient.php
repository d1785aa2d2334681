<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Http;

use CurlHandle;
use Jobgate\Worker\Transport\Unavailable;

/**
 * ext-curl, one handle kept for the worker's life so the connection to the gateway is reused.
 */
final class CurlHttpClient implements HttpClient
{
    private ?CurlHandle $handle = null;

    public function __construct(private readonly int $connectTimeoutMs = 5000)
    {
    }

    public function postJson(string $url, string $body, array $headers, int $timeoutMs): HttpResponse
    {
        $this->handle ??= curl_init();
        $handle = $this->handle;
        curl_reset($handle);
        $responseHeaders = [];
        $headerLines = ['Content-Type: application/json', 'Accept: application/json'];
        foreach ($headers as $name => $value) {
            $headerLines[] = "{$name}: {$value}";
        }
        curl_setopt_array($handle, [
            CURLOPT_URL => $url,
            CURLOPT_POST => true,
            CURLOPT_POSTFIELDS => $body,
            CURLOPT_HTTPHEADER => $headerLines,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_CONNECTTIMEOUT_MS => $this->connectTimeoutMs,
            CURLOPT_TIMEOUT_MS => $timeoutMs,
            CURLOPT_NOSIGNAL => true,
            CURLOPT_HEADERFUNCTION => static function ($curl, string $line) use (&$responseHeaders): int {
                $separator = strpos($line, ':');
                if ($separator !== false) {
                    $name = strtolower(trim(substr($line, 0, $separator)));
                    $responseHeaders[$name] = trim(substr($line, $separator + 1));
                }

                return strlen($line);
            },
        ]);
        $responseBody = curl_exec($handle);
        if ($responseBody === false) {
            $error = curl_error($handle);
            curl_close($handle);
            $this->handle = null;
            throw new Unavailable("{$url}: {$error}");
        }

        $status = (int) curl_getinfo($handle, CURLINFO_RESPONSE_CODE);

        return new HttpResponse($status, (string) $responseBody, $responseHeaders);
    }
}
