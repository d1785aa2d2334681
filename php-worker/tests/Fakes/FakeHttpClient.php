<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Fakes;

use Closure;
use Jobgate\Worker\Transport\Http\HttpClient;
use Jobgate\Worker\Transport\Http\HttpResponse;
use Jobgate\Worker\Transport\Unavailable;

final class FakeHttpClient implements HttpClient
{
    /** @var list<array{url: string, body: array<string, mixed>, raw: string, headers: array<string, string>, timeout: int}> */
    public array $requests = [];

    /** @var Closure(): void runs during each request (a signal arriving, say) */
    public Closure $onRequest;

    /** @param list<HttpResponse|Unavailable> $responses */
    public function __construct(public array $responses = [])
    {
        $this->onRequest = static function (): void {
        };
    }

    public function postJson(string $url, string $body, array $headers, int $timeoutMs): HttpResponse
    {
        $this->requests[] = [
            'url' => $url,
            'body' => json_decode($body, true, 512, JSON_THROW_ON_ERROR),
            'raw' => $body,
            'headers' => $headers,
            'timeout' => $timeoutMs,
        ];
        ($this->onRequest)();
        $response = array_shift($this->responses) ?? throw new \LogicException("no response left for {$url}");
        if ($response instanceof Unavailable) {
            throw $response;
        }

        return $response;
    }

    /** @param array<string, mixed> $body */
    public static function json(int $status, array $body, array $headers = []): HttpResponse
    {
        return new HttpResponse($status, json_encode($body, JSON_THROW_ON_ERROR), $headers);
    }
}
