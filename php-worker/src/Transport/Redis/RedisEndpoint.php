<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use Closure;
use InvalidArgumentException;

/**
 * Where a Redis server is and how to log in: parsed from `redis[s]://[[user]:password@]host[:port][/db]`
 * (`rediss://` for TLS) or, for cluster seeds, a bare `host:port`.
 */
final class RedisEndpoint
{
    public const FORM = 'redis[s]://[[user]:password@]host[:port][/db]';

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

    /**
     * Read as the gateway reads REDIS_URL, so that one environment gives both the same server,
     * login and database: no query string (ioredis would take `?db=`), and a login with a colon
     * (ioredis takes `redis://secret@host` for a user name).
     *
     * @throws InvalidArgumentException quoting the URL without its login
     */
    public static function fromUrl(string $url): self
    {
        $quoted = self::redact($url);
        $fail = static fn (string $problem) => new InvalidArgumentException("{$problem} (got \"{$quoted}\")");
        if (strpbrk($url, '?#') !== false) {
            throw $fail(
                'a Redis URL takes no query string or fragment: name the database in the path, as in '
                . 'redis://host:6379/2 (write a ? or # in the password as %3F or %23)',
            );
        }
        $parts = parse_url(preg_match('#^[a-z][a-z0-9+.-]*://#i', $url) ? $url : 'redis://' . $url);
        $scheme = strtolower((string) ($parts['scheme'] ?? ''));
        if ($parts === false || !in_array($scheme, ['redis', 'rediss'], true) || ($parts['host'] ?? '') === '') {
            throw $fail('not a Redis URL, ' . self::FORM);
        }
        if (($parts['port'] ?? null) === 0) {
            // Port 0 names no server; phpredis would take it for the default, 6379.
            throw $fail('a Redis URL must name a port from 1 to 65535, or none for 6379');
        }
        $path = trim((string) ($parts['path'] ?? ''), '/');
        if ($path !== '' && !ctype_digit($path)) {
            throw $fail('the database of a Redis URL must be a number, as in /2');
        }
        [$user, $password] = self::login($parts['user'] ?? '', $parts['pass'] ?? '', $fail);

        return new self(
            host: trim($parts['host'], '[]'),
            port: $parts['port'] ?? 6379,
            user: $user,
            password: $password,
            database: (int) ($path === '' ? 0 : $path),
            tls: $scheme === 'rediss' ? new TlsSettings() : null,
        );
    }

    /**
     * `$text` (a Redis URL, a host:port) as a message may quote it: its login replaced by `***`,
     * and its query string or fragment too (`?password=`).
     */
    public static function redact(string $text): string
    {
        $at = strrpos($text, '@');
        if ($at !== false) {
            $scheme = strpos($text, '//');
            $start = $scheme !== false && $scheme < $at ? $scheme + 2 : 0;
            $text = substr($text, 0, $start) . '***' . substr($text, $at);
        }

        return (string) preg_replace('/([?#]).*/s', '$1***', $text);
    }

    /**
     * The user and password, decoded; an empty password is none (as for ioredis).
     *
     * @param Closure(string): InvalidArgumentException $fail
     * @return array{?string, ?string}
     */
    private static function login(string $user, string $password, Closure $fail): array
    {
        if (preg_grep('/%(?![0-9A-Fa-f]{2})/', [$user, $password]) !== []) {
            throw $fail(
                'the login of a Redis URL has a % that starts no escape: percent-encode a % in the password as %25',
            );
        }
        if ($user !== '' && $password === '') {
            throw $fail(
                'the login of a Redis URL has no password: write the password after a colon: '
                . 'redis://:password@host, or redis://user:password@host',
            );
        }

        $decoded = [$user === '' ? null : rawurldecode($user), $password === '' ? null : rawurldecode($password)];
        // As the gateway reads a login: its escapes spell UTF-8 text, not arbitrary bytes.
        foreach (array_filter($decoded, 'is_string') as $text) {
            if (preg_match('//u', $text) !== 1) {
                throw $fail(
                    'the login of a Redis URL has escapes that decode to no UTF-8 text: '
                    . 'percent-encode each byte of a character\'s UTF-8 encoding, as %C3%A9 for é',
                );
            }
        }

        return $decoded;
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
