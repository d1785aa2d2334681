<?php

declare(strict_types=1);

namespace Jobgate\Worker;

use DateTimeImmutable;
use DateTimeZone;

/**
 * Structured logs: one JSON object per line (stderr by default) with `ts`, `level`, `msg` and
 * `worker` first, then the given fields.
 */
class Logger
{
    /** @var resource */
    private $stream;

    /**
     * @param resource|null $stream
     */
    public function __construct(private readonly string $workerId, $stream = null)
    {
        $this->stream = $stream ?? STDERR;
    }

    /** @param array<string, mixed> $fields */
    public function info(string $msg, array $fields = []): void
    {
        $this->write('info', $msg, $fields);
    }

    /** @param array<string, mixed> $fields */
    public function warn(string $msg, array $fields = []): void
    {
        $this->write('warn', $msg, $fields);
    }

    /** @param array<string, mixed> $fields */
    public function error(string $msg, array $fields = []): void
    {
        $this->write('error', $msg, $fields);
    }

    /**
     * The fields that identify a job on its log lines.
     *
     * @return array<string, mixed>
     */
    public static function jobFields(Job $job): array
    {
        return [
            'queue' => $job->queue,
            'job_id' => $job->id,
            'type' => $job->type,
            'attempt' => $job->attempts,
            'request_id' => $job->requestId,
        ];
    }

    /** @param array<string, mixed> $fields */
    protected function write(string $level, string $msg, array $fields): void
    {
        $line = ['ts' => $this->timestamp(), 'level' => $level, 'msg' => $msg, 'worker' => $this->workerId];
        fwrite($this->stream, Json::encodeLenient($line + $fields) . "\n");
    }

    /** RFC 3339, UTC, millisecond precision. */
    protected function timestamp(): string
    {
        return (new DateTimeImmutable('now', new DateTimeZone('UTC')))->format('Y-m-d\TH:i:s.v\Z');
    }
}
