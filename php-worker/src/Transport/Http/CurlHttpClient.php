<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Http;

use CurlHandle;
use Jobgate\Worker\Transport\Unavailable;

/**
 * ext-curl, one handle kept for the worker's life so the connection to the gateway is reused.
 * No PHP callback runs inside a transfer: a signal handler (the job timeout) that sends its own
 * request could then run inside one, where the handle cannot be reused.
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
            CURLOPT_HEADER => true,
            CURLOPT_CONNECTTIMEOUT_MS => $this->connectTimeoutMs,
            CURLOPT_TIMEOUT_MS => $timeoutMs,
            CURLOPT_NOSIGNAL => true,
        ]);
        $response = curl_exec($handle);
        if (!is_string($response)) {
            $error = curl_error($handle);
            curl_close($handle);
            $this->handle = null;
            throw new Unavailable("{$url}: {$error}");
        }

        $status = (int) curl_getinfo($handle, CURLINFO_RESPONSE_CODE);
        $headerSize = (int) curl_getinfo($handle, CURLINFO_HEADER_SIZE);

        return new HttpResponse(
            $status,
            substr($response, $headerSize),
            self::parseHeaders(substr($response, 0, $headerSize)),
        );
    }

    /**
     * The fields of the final answer's header block: an interim `100 Continue` comes first.
     *
     * @return array<string, string> lower-case names
     */
    public static function parseHeaders(string $head): array
    {
        $blocks = preg_split("/\r?\n\r?\n/", trim($head)) ?: [];
        $fields = [];
        foreach (preg_split("/\r?\n/", (string) end($blocks)) ?: [] as $line) {
            $separator = strpos($line, ':');
            if ($separator !== false) {
                $fields[strtolower(trim(substr($line, 0, $separator)))] = trim(substr($line, $separator + 1));
            }
        }

        return $fields;
    }
}
