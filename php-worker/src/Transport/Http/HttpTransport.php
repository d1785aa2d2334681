<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Http;

use Closure;
use DateTimeImmutable;
use Exception;
use Jobgate\Worker\Job;
use Jobgate\Worker\Json;
use Jobgate\Worker\Logger;
use Jobgate\Worker\ProgressRejected;
use Jobgate\Worker\StopRequest;
use Jobgate\Worker\Transport\AckAndNext;
use Jobgate\Worker\Transport\OutcomeRejected;
use Jobgate\Worker\Transport\ReservationTokens;
use Jobgate\Worker\Transport\Retrier;
use Jobgate\Worker\Transport\RetryOutcome;
use Jobgate\Worker\Transport\Transport;
use Jobgate\Worker\Transport\Unavailable;

/**
 * The worker protocol over the gateway's worker routes (openapi.yaml, tag `workers`), for
 * workers that cannot reach Redis.
 */
final class HttpTransport implements Transport
{
    /** The calls whose body carries what the job produced, which the gateway may refuse. */
    private const CALLS_WITH_JOB_OUTPUT = ['ack', 'retry', 'fail'];

    /** How much of an error message goes along when the gateway refused the whole of it. */
    private const SHORT_MESSAGE_BYTES = 256;

    /**
     * The ack that asked for the first queue's next job found none: the reserve() that follows
     * starts its quick pass at the second queue instead of asking the first again.
     */
    private bool $firstQueueFoundEmpty = false;

    private readonly ReservationTokens $tokens;

    public function __construct(
        private readonly HttpClient $client,
        private readonly HttpTransportOptions $options,
        private readonly Retrier $retrier,
        private readonly StopRequest $stop = new StopRequest(),
    ) {
        $this->tokens = new ReservationTokens();
    }

    public function name(): string
    {
        return 'http';
    }

    /**
     * One queue: long polls. Several: a quick pass in priority order (from the second queue just
     * after an ack found the first one empty), then long polls on each in turn with each slice of
     * the wait split between them. A later queue whose last reserve got no answer is asked first,
     * for the job that reserve may have leased.
     */
    public function reserve(): ?Job
    {
        $queues = $this->options->queues;
        $quickPassFrom = $this->firstQueueFoundEmpty ? 1 : 0;
        $this->firstQueueFoundEmpty = false;
        try {
            $unanswered = $this->tokens->unanswered();
            $job = $unanswered !== null && $unanswered !== $queues[0] ? $this->reserveFrom($unanswered, 0) : null;
            if ($job === null && count($queues) > 1) {
                $job = $this->reserveFromEach(array_slice($queues, $quickPassFrom), 0);
            }
            // The block time is at least 1 ms, so one queue is always asked once.
            $leftMs = min($this->options->blockMs, HttpTransportOptions::MAX_WAIT_MS);
            for (; $job === null && $leftMs > 0 && !$this->stop->isRequested(); $leftMs -= $sliceMs) {
                $sliceMs = min($leftMs, self::IDLE_WAIT_SLICE_MS);
                $job = $this->reserveFromEach($queues, intdiv($sliceMs, count($queues)));
            }
            $this->retrier->recovered();

            return $job;
        } catch (Unavailable $unavailable) {
            $this->retrier->pause($unavailable);

            return null;
        }
    }

    public function leasedUnanswered(): ?Job
    {
        $queue = $this->tokens->unanswered();
        try {
            return $queue === null ? null : $this->reserveFrom($queue, 0);
        } catch (Unavailable) {
            return null;
        }
    }

    public function ack(Job $job, ?string $resultJson): bool
    {
        return $this->settle($job, 'ack', self::ackBody($job, $resultJson), ['succeeded']) !== null;
    }

    /**
     * One request: the ack asks the gateway to lease the next job of the same queue (`reserve`,
     * no waiting). Only for a job of the first queue, so the queues' priority order holds; a job
     * of a later queue is just acked. The reserve goes with the first queue's token: when no
     * answer came, the next reserve on that queue gets the job this one may have leased.
     */
    public function ackAndReserve(Job $job, ?string $resultJson): AckAndNext
    {
        $this->firstQueueFoundEmpty = false;
        if ($job->queue !== $this->options->queues[0]) {
            return new AckAndNext($this->ack($job, $resultJson), null);
        }
        $body = self::ackBody($job, $resultJson);
        $body['reserve'] = Json::encode([
            'worker' => $this->options->workerId,
            'lease_ms' => $this->options->leaseMs,
            'lease_token' => $this->tokens->for($job->queue),
        ]);
        $next = null;
        $firstQueueAsked = false;
        $readNext = function (HttpResponse $answer) use ($job, &$next, &$firstQueueAsked): void {
            // A resent ack that finds its job succeeded (409) leases nothing; an answer without
            // `next` could not ask (its reserve may still have run under the token).
            $firstQueueAsked = self::isSuccess($answer) && array_key_exists('next', $answer->json());
            $next = $firstQueueAsked ? $this->answered($job->queue, self::nextOf($answer)) : null;
        };
        $state = $this->settle($job, 'ack', $body, ['succeeded'], $readNext);
        $this->firstQueueFoundEmpty = $firstQueueAsked && $next === null;

        return new AckAndNext($state !== null, $next);
    }

    public function fail(Job $job, string $message, string $class): bool
    {
        return $this->reportError($job, 'fail', $message, $class, [], ['dead']) !== null;
    }

    public function retry(Job $job, string $message, string $class, ?int $delayMs): RetryOutcome
    {
        $fields = $delayMs === null ? [] : ['delay_ms' => (string) max(0, $delayMs)];
        $states = ['scheduled', 'queued', 'dead', 'expired'];
        $state = $this->reportError($job, 'retry', $message, $class, $fields, $states);

        return $state === null ? RetryOutcome::LeaseLost : RetryOutcome::fromState($state);
    }

    /**
     * A fail or retry with its error report. One the gateway refuses (its body limit may be
     * below the report's size) goes again with the start of the message only: the job's fate
     * must not hang on the length of what went wrong.
     *
     * @param array<string, string> $fields
     * @param list<string> $doneStates
     */
    private function reportError(
        Job $job,
        string $operation,
        string $message,
        string $class,
        array $fields,
        array $doneStates,
    ): ?string {
        $body = static fn (string $message): array => [
            'lease_token' => Json::encode($job->leaseToken),
            'error' => Json::encode(['message' => $message, 'class' => $class]),
        ] + $fields;
        try {
            return $this->settle($job, $operation, $body($message), $doneStates);
        } catch (OutcomeRejected $refused) {
            // Bytes that JSON escapes (`\u0001`) take six: what is sent is kept short, not what is cut.
            $start = Json::utf8Truncate($message, self::SHORT_MESSAGE_BYTES);
            while (strlen(Json::encode($start)) > self::SHORT_MESSAGE_BYTES + 2) {
                $start = Json::utf8Truncate($start, intdiv(strlen($start), 2));
            }
            $short = "{$refused->getMessage()}; the message began: {$start}";

            return $this->settle($job, $operation, $body($short), $doneStates);
        }
    }

    public function heartbeat(Job $job, int $leaseMs, ?string $progressJson = null): bool
    {
        $body = ['lease_token' => Json::encode($job->leaseToken), 'lease_ms' => (string) $leaseMs];
        if ($progressJson !== null) {
            $body['progress'] = $progressJson;
        }
        try {
            $response = $this->post($this->jobUrl($job, 'heartbeat'), $body, $this->jobHeaders($job));
            $held = $this->stateAfter($response, 'heartbeat', ['active']) !== null;
        } catch (Unavailable $unavailable) {
            $this->retrier->note($unavailable, 'heartbeat', Logger::jobFields($job));

            return true;
        }
        $this->retrier->recovered();

        return $held;
    }

    /** @param non-empty-list<string> $queues */
    private function reserveFromEach(array $queues, int $waitMs): ?Job
    {
        foreach ($queues as $queue) {
            $job = $this->reserveFrom($queue, $waitMs);
            if ($job !== null) {
                return $job;
            }
        }

        return null;
    }

    private function reserveFrom(string $queue, int $waitMs): ?Job
    {
        $response = $this->post(
            $this->queueUrl($queue) . '/jobs:reserve',
            [
                'worker' => Json::encode($this->options->workerId),
                'lease_ms' => (string) $this->options->leaseMs,
                'wait_ms' => (string) $waitMs,
                'lease_token' => Json::encode($this->tokens->for($queue)),
            ],
            [],
            $waitMs,
        );
        if ($response->status === 204) {
            return $this->answered($queue, null);
        }
        if (!self::isSuccess($response)) {
            throw $this->unexpected('reserve', $response);
        }

        return $this->answered($queue, self::jobOf($response, $response->json(), $response->objects()));
    }

    /** The answer to a reserve on $queue came, with a job or without. */
    private function answered(string $queue, ?Job $job): ?Job
    {
        $this->tokens->answered($queue, $job !== null);

        return $job;
    }

    /**
     * Posts a lease-ending call until the gateway answers.
     *
     * @param array<string, string> $body
     * @param list<string> $doneStates the states this call leaves the job in
     * @param (Closure(HttpResponse): void)|null $readAnswer reads more of an answer that found the
     *        lease held; it may throw Unavailable to have the call sent again
     * @return string|null the job's new state; null when the lease was not held
     * @throws OutcomeRejected
     */
    private function settle(
        Job $job,
        string $operation,
        array $body,
        array $doneStates,
        ?Closure $readAnswer = null,
    ): ?string {
        $url = $this->jobUrl($job, $operation);
        $headers = $this->jobHeaders($job);

        return $this->retrier->untilAvailable(
            function () use ($url, $body, $headers, $operation, $doneStates, $readAnswer): ?string {
                $answer = $this->post($url, $body, $headers);
                $state = $this->stateAfter($answer, $operation, $doneStates);
                if ($state !== null && $readAnswer !== null) {
                    $readAnswer($answer);
                }

                return $state;
            },
            fields: Logger::jobFields($job),
        );
    }

    /**
     * @param list<string> $doneStates the states a success leaves the job in
     * @return string|null the Settlement's state; null when the lease was lost or the job is gone
     * @throws Unavailable on a success that does not say the job is in one of $doneStates (a
     *         proxy's page, a cut body): as if no answer came, the call is sent again
     * @throws OutcomeRejected when the gateway refuses an ack's result or a retry's or fail's fields
     */
    private function stateAfter(HttpResponse $response, string $operation, array $doneStates): ?string
    {
        $problem = $response->json();
        $code = $problem['code'] ?? null;
        if (self::isSuccess($response)) {
            $state = $problem['state'] ?? null;
            if (!in_array($state, $doneStates, true)) {
                throw new Unavailable("{$operation}: the gateway answered {$response->status} without the job's state: "
                    . self::excerpt($response->body));
            }

            return $state;
        }
        if ($response->status === 409 && $code === 'LEASE_LOST') {
            // An earlier copy of this call ended the lease (libcurl may send one again by itself
            // when a kept connection dies before the answer); its answer was lost.
            $endedAs = $problem['ended_as'] ?? null;

            return in_array($endedAs, $doneStates, true) ? (string) $endedAs : null;
        }
        if ($response->status === 404 && in_array($code, ['JOB_NOT_FOUND', 'QUEUE_NOT_FOUND'], true)) {
            return null;
        }
        $refusesContent = $response->status === 413
            || ($response->status === 400 && in_array($code, ['VALIDATION_FAILED', 'INVALID_JSON'], true));
        if ($refusesContent && in_array($operation, self::CALLS_WITH_JOB_OUTPUT, true)) {
            throw new OutcomeRejected("the gateway refused the {$operation}: " . self::describe($response));
        }
        if ($refusesContent && $operation === 'heartbeat') {
            throw new ProgressRejected('the gateway refused the progress: ' . self::describe($response));
        }
        throw $this->unexpected($operation, $response);
    }

    /**
     * @param array<string, string> $body member => JSON text of its value
     * @param array<string, string> $headers
     * @throws Unavailable on no answer, a 5xx, a 429 or a 408
     */
    private function post(string $url, array $body, array $headers, int $waitMs = 0): HttpResponse
    {
        if ($this->options->apiKey !== null) {
            $headers['Authorization'] = 'Bearer ' . $this->options->apiKey;
        }
        $response = $this->client->postJson(
            $url,
            self::jsonObject($body),
            $headers,
            $waitMs + $this->options->requestTimeoutMs,
        );
        // A 408: the request did not reach a route (it came too slowly); it may go again.
        if ($response->status >= 500 || $response->status === 429 || $response->status === 408) {
            $retryAfter = $response->header('Retry-After');
            throw new Unavailable(
                "{$url} answered {$response->status}: " . ($response->json()['detail'] ?? $response->body),
                $retryAfter !== null && ctype_digit($retryAfter) ? (int) $retryAfter * 1000 : null,
            );
        }

        return $response;
    }

    private function unexpected(string $operation, HttpResponse $response): GatewayError
    {
        return new GatewayError("{$operation}: the gateway answered " . self::describe($response));
    }

    /** `<status> <code>: <detail>` of a problem answer (the start of the body when it is none). */
    private static function describe(HttpResponse $response): string
    {
        $problem = $response->json();

        return sprintf(
            '%d %s: %s',
            $response->status,
            $problem['code'] ?? '',
            $problem['detail'] ?? self::excerpt($response->body),
        );
    }

    private static function excerpt(string $body): string
    {
        return substr($body, 0, 500);
    }

    private static function isSuccess(HttpResponse $response): bool
    {
        return $response->status >= 200 && $response->status < 300;
    }

    private function queueUrl(string $queue): string
    {
        return rtrim($this->options->gatewayUrl, '/') . '/v1/queues/' . rawurlencode($queue);
    }

    private function jobUrl(Job $job, string $operation): string
    {
        return $this->queueUrl($job->queue) . '/jobs/' . rawurlencode($job->id) . ':' . $operation;
    }

    /** @return array<string, string> */
    private function jobHeaders(Job $job): array
    {
        $requestId = $job->requestId;

        return $requestId !== null && preg_match('/^[\x21-\x7E]{1,255}$/', $requestId)
            ? ['X-Request-ID' => $requestId]
            : [];
    }

    /** @param array<string, string> $members name => JSON text of the value, spliced in as is */
    private static function jsonObject(array $members): string
    {
        $parts = [];
        foreach ($members as $name => $json) {
            $parts[] = Json::encode((string) $name) . ':' . $json;
        }

        return '{' . implode(',', $parts) . '}';
    }

    /** @return array<string, string> */
    private static function ackBody(Job $job, ?string $resultJson): array
    {
        $body = ['lease_token' => Json::encode($job->leaseToken)];
        if ($resultJson !== null) {
            $body['result'] = $resultJson;
        }

        return $body;
    }

    /**
     * The job leased along with an ack (`next`), if one was.
     *
     * @throws Unavailable when `next` is not a reservation
     */
    private static function nextOf(HttpResponse $response): ?Job
    {
        $next = $response->json()['next'] ?? null;
        if ($next === null) {
            return null;
        }
        if (!is_array($next)) {
            throw new Unavailable('ack: the gateway answered a next job that is not a reservation: '
                . self::excerpt($response->body));
        }

        return self::jobOf($response, $next, $response->objects()->next ?? null);
    }

    /**
     * @param mixed $reservation a Reservation (openapi.yaml), decoded as arrays
     * @param mixed $objects the same, decoded as objects (to tell `{}` from `[]` in the payload)
     * @throws Unavailable when it is not a reservation (a proxy's page, a cut body): as for no
     *         answer, the reserve goes again with the same token and gets the job it may have leased
     */
    private static function jobOf(HttpResponse $response, mixed $reservation, mixed $objects): Job
    {
        $job = is_array($reservation) ? $reservation['job'] ?? null : null;
        $lease = is_array($reservation) ? $reservation['lease'] ?? null : null;
        if (!is_array($job) || !is_array($lease) || !isset($job['id'], $lease['token'])) {
            throw new Unavailable("the gateway answered {$response->status} without a reservation: "
                . self::excerpt($response->body));
        }
        $payload = $job['payload'] ?? [];

        return new Job(
            id: (string) $job['id'],
            queue: (string) ($job['queue'] ?? ''),
            type: (string) ($job['type'] ?? ''),
            payload: is_array($payload) ? $payload : [],
            attempts: (int) ($job['attempts'] ?? 0),
            maxAttempts: (int) ($job['max_attempts'] ?? 0),
            timeoutMs: isset($job['timeout_ms']) ? (int) $job['timeout_ms'] : null,
            requestId: isset($job['request_id']) ? (string) $job['request_id'] : null,
            createdAt: self::epochMs($job['created_at'] ?? 0),
            priority: (int) ($job['priority'] ?? 0),
            leaseToken: (string) $lease['token'],
            leaseDeadline: self::epochMs($lease['deadline'] ?? 0),
            payloadJson: Json::encodeLenient($objects->job->payload ?? new \stdClass()),
            payloadValid: is_array($payload),
        );
    }

    /** An RFC 3339 timestamp (or epoch ms) as epoch ms. */
    private static function epochMs(mixed $timestamp): int
    {
        if (is_int($timestamp) || (is_string($timestamp) && ctype_digit($timestamp))) {
            return (int) $timestamp;
        }
        try {
            return (int) (new DateTimeImmutable((string) $timestamp))->format('Uv');
        } catch (Exception) {
            return 0;
        }
    }
}
