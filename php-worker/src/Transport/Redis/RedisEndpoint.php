<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use InvalidArgumentException;

/**
 * Where a Redis server is and how to log in: parsed from `redis://[user:pass@]host:port[/db]`
 * (`rediss://` for TLS) or, for cluster seeds, a bare `host:port`.
 */
final class RedisEndpoint
{
    public function __construct(
        public readonly string $host,
        public readonly int $port = 6379,
        public readonly ?string $user = null,
        public readonly ?string $password = null,
        public readonly int $database = 0,
        /** null = plain TCP */
        public readonly ?TlsSettings $tls = null,
    ) {
    }

    /** @throws InvalidArgumentException */
    public static function fromUrl(string $url): self
    {
        if (!preg_match('#^[a-z][a-z0-9+.-]*://#i', $url)) {
            $url = 'redis://' . $url;
        }
        $parts = parse_url($url);
        $scheme = strtolower((string) ($parts['scheme'] ?? ''));
        if ($parts === false || !in_array($scheme, ['redis', 'rediss'], true) || ($parts['host'] ?? '') === '') {
            throw new InvalidArgumentException("not a Redis URL (redis://[user:pass@]host:port[/db]): {$url}");
        }
        $path = trim((string) ($parts['path'] ?? ''), '/');
        if ($path !== '' && !ctype_digit($path)) {
            throw new InvalidArgumentException("the database of a Redis URL must be a number: {$url}");
        }
        $user = isset($parts['user']) && $parts['user'] !== '' ? rawurldecode($parts['user']) : null;
        $password = isset($parts['pass']) ? rawurldecode($parts['pass']) : null;

        return new self(
            host: trim($parts['host'], '[]'),
            port: $parts['port'] ?? 6379,
            // `redis://secret@host` is the password-only form.
            user: $password === null ? null : $user,
            password: $password ?? $user,
            database: (int) ($path === '' ? 0 : $path),
            tls: $scheme === 'rediss' ? new TlsSettings() : null,
        );
    }

    /** This endpoint at another address, with the same login, database and TLS. */
    public function at(string $host, int $port): self
    {
        return new self($host, $port, $this->user, $this->password, $this->database, $this->tls);
    }

    /** This endpoint, verifying and showing certificates as `$tls` says; only for `rediss://`. */
    public function withTls(TlsSettings $tls): self
    {
        if ($this->tls === null) {
            throw new InvalidArgumentException('TLS settings are for a rediss:// URL');
        }

        return new self($this->host, $this->port, $this->user, $this->password, $this->database, $tls);
    }

    /** The host as phpredis takes it (`tls://` for TLS). */
    public function address(): string
    {
        return ($this->tls !== null ? 'tls://' : '') . $this->host;
    }

    /**
     * phpredis' connection context, null for plain TCP.
     *
     * @return array{stream: array<string, string|bool>}|null
     */
    public function context(): ?array
    {
        return $this->tls?->context();
    }

    /** The credentials as phpredis's auth takes them, null for none. */
    public function credentials(): string|array|null
    {
        if ($this->password === null) {
            return null;
        }

        return $this->user === null ? $this->password : [$this->user, $this->password];
    }
}
