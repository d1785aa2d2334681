<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Fakes;

use Jobgate\Worker\Logger;

/**
 * A Logger writing to memory, with its lines decoded for assertions.
 */
final class LogLines
{
    /** @var resource */
    private $stream;
    public readonly Logger $logger;

    public function __construct(string $workerId = 'host:1')
    {
        $stream = fopen('php://memory', 'w+');
        assert($stream !== false);
        $this->stream = $stream;
        $this->logger = new Logger($workerId, $stream);
    }

    /** @return list<array<string, mixed>> */
    public function all(): array
    {
        rewind($this->stream);
        $lines = [];
        foreach (explode("\n", trim((string) stream_get_contents($this->stream))) as $line) {
            if ($line !== '') {
                $lines[] = json_decode($line, true, 512, JSON_THROW_ON_ERROR);
            }
        }

        return $lines;
    }

    /** @return list<string> */
    public function messages(): array
    {
        return array_column($this->all(), 'msg');
    }

    /** @return array<string, mixed>|null the first line with this msg */
    public function first(string $msg): ?array
    {
        foreach ($this->all() as $line) {
            if ($line['msg'] === $msg) {
                return $line;
            }
        }

        return null;
    }

    public function raw(): string
    {
        rewind($this->stream);

        return (string) stream_get_contents($this->stream);
    }
}
