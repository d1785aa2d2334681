<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Http;

final class HttpResponse
{
    /** @var array<string, mixed>|null the body decoded as arrays, once asked for */
    private ?array $decoded = null;
    /** The body decoded as objects, once asked for. */
    private mixed $objects = null;
    private bool $objectsDecoded = false;

    /** @param array<string, string> $headers lower-case names */
    public function __construct(
        public readonly int $status,
        public readonly string $body,
        public readonly array $headers = [],
    ) {
    }

    public function header(string $name): ?string
    {
        return $this->headers[strtolower($name)] ?? null;
    }

    /** @return array<string, mixed> the JSON object of the body ([] when there is none) */
    public function json(): array
    {
        if ($this->decoded === null) {
            $decoded = json_decode($this->body, true);
            $this->decoded = is_array($decoded) ? $decoded : [];
        }

        return $this->decoded;
    }

    /** The body decoded as objects (to tell `{}` from `[]`); null when it is not JSON. */
    public function objects(): mixed
    {
        if (!$this->objectsDecoded) {
            $this->objects = json_decode($this->body);
            $this->objectsDecoded = true;
        }

        return $this->objects;
    }
}
