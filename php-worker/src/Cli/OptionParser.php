<?php

declare(strict_types=1);

namespace Jobgate\Worker\Cli;

use Closure;
use InvalidArgumentException;
use Jobgate\Worker\Transport\Redis\RedisEndpoint;
use Jobgate\Worker\Transport\Redis\SentinelConfig;
use Jobgate\Worker\Transport\Redis\TlsSettings;

/**
 * Reads the command line (`--opt=value` or `--opt value`), with environment fallbacks, into a
 * WorkerConfig. Anything wrong is a UsageError.
 */
final class OptionParser
{
    /** Option name => true when it may be given several times. `help` takes no value. */
    private const OPTIONS = [
        'queue' => true,
        'handlers' => false,
        'transport' => false,
        'redis' => false,
        'redis-tls-ca' => false,
        'redis-tls-cert' => false,
        'redis-tls-key' => false,
        'cluster' => false,
        'sentinel' => false,
        'sentinel-master' => false,
        'sentinel-username' => false,
        'sentinel-password' => false,
        'prefix' => false,
        'gateway' => false,
        'api-key' => false,
        'timeout' => false,
        'lease' => false,
        'memory' => false,
        'max-jobs' => false,
        'max-time' => false,
        'sleep' => false,
        'worker-id' => false,
        'lua-dir' => false,
        'job-retention' => false,
        'dead-retention' => false,
        'events-max-len' => false,
    ];

    /**
     * Options that only one transport reads => that transport. Given on the command line with the
     * other, they would be ignored: a usage error instead (a variable may serve other programs).
     */
    private const TRANSPORT_OF = [
        'gateway' => 'http',
        'api-key' => 'http',
        'redis' => 'redis',
        'redis-tls-ca' => 'redis',
        'redis-tls-cert' => 'redis',
        'redis-tls-key' => 'redis',
        'cluster' => 'redis',
        'sentinel' => 'redis',
        'sentinel-master' => 'redis',
        'sentinel-username' => 'redis',
        'sentinel-password' => 'redis',
        'prefix' => 'redis',
        'lua-dir' => 'redis',
        'job-retention' => 'redis',
        'dead-retention' => 'redis',
        'events-max-len' => 'redis',
    ];

    private const NAME_PATTERN = '/^[A-Za-z0-9_.-]{1,64}$/';
    /** As the gateway's: `.` and `..` are no queues (a URL path would resolve them). */
    private const QUEUE_PATTERN = '/^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,64}$/';
    private const SENTINEL_MASTER_PATTERN = '/^[A-Za-z0-9_.:-]{1,128}$/';
    private const WORKER_ID_PATTERN = '/^[A-Za-z0-9_.:@\/-]{1,128}$/';
    private const DAY_MS = 86_400_000;

    /**
     * @param array<string, string> $env
     */
    public function __construct(
        private readonly array $env,
        private readonly string $defaultLuaDir,
        private readonly string $defaultWorkerId,
    ) {
    }

    /** True when the arguments ask for the usage text. */
    public static function wantsHelp(array $args): bool
    {
        return in_array('--help', $args, true) || in_array('-h', $args, true);
    }

    /**
     * @param list<string> $args the arguments after the program name
     * @throws UsageError
     */
    public function parse(array $args): WorkerConfig
    {
        $given = $this->read($args);
        $transport = $given['transport'][0] ?? 'redis';
        // The variables of the other transport's options are not read: they may serve other programs.
        $single = fn (string $name, string $env = ''): ?string => $given[$name][0]
            ?? ((self::TRANSPORT_OF[$name] ?? $transport) === $transport ? $this->env($env) : null);
        $source = static fn (string $name, string $env): string => isset($given[$name]) ? "--{$name}" : $env;

        $queues = $given['queue'] ?? [];
        if ($queues === []) {
            throw new UsageError('--queue is required (repeat it for several queues, highest priority first)');
        }
        foreach ($queues as $queue) {
            self::requirePattern('--queue', $queue, self::QUEUE_PATTERN, '[A-Za-z0-9_.-]{1,64}, not . or ..');
        }
        if (count(array_unique($queues)) !== count($queues)) {
            throw new UsageError('--queue: each queue may be given once');
        }
        $handlers = $single('handlers')
            ?? throw new UsageError('--handlers is required (a PHP file returning the handler map)');

        if (!in_array($transport, ['redis', 'http'], true)) {
            throw new UsageError("--transport must be redis or http (got \"{$transport}\")");
        }
        foreach (self::TRANSPORT_OF as $name => $only) {
            if ($only !== $transport && isset($given[$name])) {
                throw new UsageError(
                    "--{$name} is for --transport={$only}" . ($only === 'redis'
                        ? ': over http the gateway reaches Redis, with its own settings'
                        : ': this worker reaches Redis itself'),
                );
            }
        }
        $gateway = $single('gateway', 'JOBGATE_URL');
        if ($transport === 'http') {
            if ($gateway === null) {
                throw new UsageError('--transport=http needs --gateway=URL (or JOBGATE_URL)');
            }
            if (!self::isHttpUrl($gateway)) {
                throw new UsageError(
                    "{$source('gateway', 'JOBGATE_URL')} must be an http:// or https:// URL (got \"{$gateway}\")",
                );
            }
        }

        $prefix = $single('prefix', 'KEY_PREFIX') ?? 'jobgate';
        self::requirePattern($source('prefix', 'KEY_PREFIX'), $prefix, self::NAME_PATTERN, '[A-Za-z0-9_.-]{1,64}');
        $workerId = $single('worker-id') ?? $this->defaultWorkerId;
        self::requirePattern('--worker-id', $workerId, self::WORKER_ID_PATTERN, '[A-Za-z0-9_.:@/-]{1,128}');

        if ($transport === 'redis' && $this->env('REDIS_CLUSTER') !== null) {
            throw new UsageError(
                "REDIS_CLUSTER is no longer read: name the cluster's seed nodes in REDIS_CLUSTER_NODES, "
                . 'which the gateway reads too',
            );
        }
        $cluster = $single('cluster', 'REDIS_CLUSTER_NODES');
        $sentinel = $this->sentinel($single, $source);
        if ($sentinel !== null && $cluster !== null) {
            throw new UsageError(
                '--sentinel and --cluster (or REDIS_SENTINELS and REDIS_CLUSTER_NODES): choose one; '
                . 'a Redis Cluster fails over by itself',
            );
        }

        $redis = $this->redis($single, $source);
        if ($cluster !== null && $redis->database !== 0) {
            throw new UsageError(
                "{$source('redis', 'REDIS_URL')} names database {$redis->database}, but a Redis Cluster "
                . "({$source('cluster', 'REDIS_CLUSTER_NODES')}) has only database 0: "
                . 'take the database out of the URL (or make it /0)',
            );
        }

        return new WorkerConfig(
            queues: array_values($queues),
            handlersFile: $handlers,
            transport: $transport,
            redis: $redis,
            clusterSeeds: $cluster === null ? null : array_map(
                static fn (RedisEndpoint $seed): RedisEndpoint => $redis->at($seed->host, $seed->port),
                self::seeds($source('cluster', 'REDIS_CLUSTER_NODES'), $cluster, addressOnly: true),
            ),
            sentinel: $sentinel,
            prefix: $prefix,
            gatewayUrl: $gateway,
            apiKey: $single('api-key', 'JOBGATE_API_KEY'),
            timeoutSeconds: self::wholeSeconds('--timeout', $single('timeout'), 60, 0, 7 * 86_400),
            leaseSeconds: self::wholeSeconds('--lease', $single('lease'), 30, 1, 3600),
            memoryMb: self::integer('--memory', $single('memory'), 96, 1, 1_048_576),
            maxJobs: self::integer('--max-jobs', $single('max-jobs'), 0, 0, PHP_INT_MAX),
            maxTimeSeconds: self::wholeSeconds('--max-time', $single('max-time'), 0, 0, 365 * 86_400),
            sleepSeconds: self::seconds('--sleep', $single('sleep'), 3.0, 0.001, 300.0),
            workerId: $workerId,
            luaDir: $single('lua-dir', 'JOBGATE_LUA_DIR') ?? $this->defaultLuaDir,
            jobRetentionMs: self::duration(
                $source('job-retention', 'JOB_RETENTION'),
                $single('job-retention', 'JOB_RETENTION'),
                self::DAY_MS,
            ),
            deadRetentionMs: self::duration(
                $source('dead-retention', 'DEAD_RETENTION'),
                $single('dead-retention', 'DEAD_RETENTION'),
                7 * self::DAY_MS,
            ),
            eventsMaxLen: self::integer(
                $source('events-max-len', 'EVENTS_MAX_LEN'),
                $single('events-max-len', 'EVENTS_MAX_LEN'),
                10_000,
                100,
                10_000_000,
            ),
        );
    }

    /**
     * @param list<string> $args
     * @return array<string, non-empty-list<string>> option name => the values given
     */
    private function read(array $args): array
    {
        $given = [];
        for ($i = 0; $i < count($args); $i++) {
            $arg = $args[$i];
            if (!str_starts_with($arg, '--') || $arg === '--') {
                throw new UsageError("unexpected argument \"{$arg}\"");
            }
            [$name, $value] = str_contains($arg, '=') ? explode('=', substr($arg, 2), 2) : [substr($arg, 2), null];
            if (!array_key_exists($name, self::OPTIONS)) {
                throw new UsageError("unknown option --{$name}");
            }
            if ($value === null) {
                $value = $args[$i + 1] ?? null;
                if ($value === null || str_starts_with($value, '--')) {
                    throw new UsageError("--{$name} needs a value");
                }
                $i++;
            }
            if (trim($value) === '') {
                throw new UsageError("--{$name} needs a value");
            }
            if (isset($given[$name]) && !self::OPTIONS[$name]) {
                throw new UsageError("--{$name} may be given once");
            }
            $given[$name][] = trim($value);
        }

        return $given;
    }

    /** An http(s) URL curl can take: a host, a numeric port if any, no white space or controls. */
    private static function isHttpUrl(string $url): bool
    {
        if (!preg_match('#^https?://[^/\s]+#i', $url) || preg_match('/[\s\x00-\x1f\x7f]/', $url)) {
            return false;
        }
        $parts = parse_url($url);

        return is_array($parts) && ($parts['host'] ?? '') !== '' && ($parts['port'] ?? 1) > 0;
    }

    private function env(string $name): ?string
    {
        if ($name === '') {
            return null;
        }
        $value = trim((string) ($this->env[$name] ?? ''));

        return $value === '' ? null : $value;
    }

    private static function requirePattern(string $option, string $value, string $pattern, string $hint): void
    {
        if (!preg_match($pattern, $value)) {
            throw new UsageError("{$option} must match {$hint} (got \"{$value}\")");
        }
    }

    private static function integer(string $option, ?string $value, int $default, int $min, int $max): int
    {
        if ($value === null) {
            return $default;
        }
        if (!preg_match('/^\d{1,18}$/', $value) || (int) $value < $min || (int) $value > $max) {
            $range = $max === PHP_INT_MAX ? "at least {$min}" : "from {$min} to {$max}";
            throw new UsageError("{$option} must be an integer {$range} (got \"{$value}\")");
        }

        return (int) $value;
    }

    /**
     * Whole seconds: a bare number, or a duration with its unit (`90s`, `15m`, `2h`, `1500ms` is
     * not whole).
     */
    private static function wholeSeconds(string $option, ?string $value, int $default, int $min, int $max): int
    {
        if ($value === null || preg_match('/^\d{1,18}$/', $value)) {
            return self::integer($option, $value, $default, $min, $max);
        }
        $ms = Duration::parseMs($value);
        if ($ms === null || $ms % 1000 !== 0 || $ms / 1000 < $min || $ms / 1000 > $max) {
            throw new UsageError(
                "{$option} must be whole seconds from {$min} to {$max}, as a number or like 90s, 15m or 2h "
                . "(got \"{$value}\")",
            );
        }

        return intdiv($ms, 1000);
    }

    /** Seconds, to the millisecond: a bare number (`0.5`), or a duration with its unit (`500ms`). */
    private static function seconds(string $option, ?string $value, float $default, float $min, float $max): float
    {
        if ($value === null) {
            return $default;
        }
        $ms = preg_match('/^\d{1,6}(\.\d{1,3})?$/', $value) ? null : Duration::parseMs($value);
        $seconds = $ms === null ? $value : (string) ($ms / 1000);
        if (!preg_match('/^\d{1,6}(\.\d{1,3})?$/', $seconds) || (float) $seconds < $min || (float) $seconds > $max) {
            throw new UsageError(
                "{$option} must be a number of seconds from {$min} to {$max}, like 3, 0.5 or 500ms (got \"{$value}\")",
            );
        }

        return (float) $seconds;
    }

    private static function duration(string $option, ?string $value, int $default): int
    {
        if ($value === null) {
            return $default;
        }
        $ms = Duration::parseMs($value);
        if ($ms === null || $ms < 1000 || $ms > 365 * self::DAY_MS) {
            throw new UsageError(
                "{$option} must be a duration like 500ms, 30s, 15m, 24h or 7d, from 1s to 365d (got \"{$value}\")",
            );
        }

        return $ms;
    }

    /** @param string $source the option or variable the URL came from */
    private static function endpoint(string $source, string $url): RedisEndpoint
    {
        try {
            return RedisEndpoint::fromUrl($url);
        } catch (InvalidArgumentException $invalid) {
            throw new UsageError("{$source}: {$invalid->getMessage()}");
        }
    }

    /**
     * The Redis server (or, with a cluster or Sentinel, the login, database and TLS of every node)
     * with the TLS files given for it.
     *
     * @param Closure(string, string=): ?string $single an option's value, else its variable's
     * @param Closure(string, string): string $source the option's name if it was given, else the variable's
     */
    private function redis(Closure $single, Closure $source): RedisEndpoint
    {
        $redis = self::endpoint(
            $source('redis', 'REDIS_URL'),
            $single('redis', 'REDIS_URL') ?? 'redis://127.0.0.1:6379',
        );
        $files = [
            'redis-tls-ca' => $single('redis-tls-ca', 'REDIS_TLS_CA_FILE'),
            'redis-tls-cert' => $single('redis-tls-cert', 'REDIS_TLS_CERT_FILE'),
            'redis-tls-key' => $single('redis-tls-key', 'REDIS_TLS_KEY_FILE'),
        ];
        $given = array_keys(array_filter($files, static fn (?string $file): bool => $file !== null));
        if ($given === []) {
            return $redis;
        }
        if ($redis->tls === null) {
            throw new UsageError(
                "--{$given[0]} is for TLS connections, but --redis (REDIS_URL) uses redis:// "
                . '(use rediss:// to connect over TLS)',
            );
        }
        if (($files['redis-tls-cert'] === null) !== ($files['redis-tls-key'] === null)) {
            throw new UsageError(
                '--redis-tls-cert (REDIS_TLS_CERT_FILE) and --redis-tls-key (REDIS_TLS_KEY_FILE) go together: '
                . 'a client certificate and its key',
            );
        }

        return $redis->withTls(
            new TlsSettings($files['redis-tls-ca'], $files['redis-tls-cert'], $files['redis-tls-key']),
        );
    }

    /**
     * @param Closure(string, string=): ?string $single an option's value, else its variable's
     * @param Closure(string, string): string $source the option's name if it was given, else the variable's
     */
    private function sentinel(Closure $single, Closure $source): ?SentinelConfig
    {
        $sentinels = $single('sentinel', 'REDIS_SENTINELS');
        $masterName = $single('sentinel-master', 'REDIS_SENTINEL_NAME');
        $username = $single('sentinel-username', 'REDIS_SENTINEL_USERNAME');
        $password = $single('sentinel-password', 'REDIS_SENTINEL_PASSWORD');
        if ($sentinels === null) {
            if ($masterName !== null) {
                throw new UsageError('--sentinel-master (REDIS_SENTINEL_NAME) needs --sentinel (REDIS_SENTINELS)');
            }
            if ($username !== null) {
                throw new UsageError(
                    '--sentinel-username (REDIS_SENTINEL_USERNAME) needs --sentinel (REDIS_SENTINELS)',
                );
            }
            if ($password !== null) {
                throw new UsageError(
                    '--sentinel-password (REDIS_SENTINEL_PASSWORD) needs --sentinel (REDIS_SENTINELS)',
                );
            }

            return null;
        }
        if ($username !== null && $password === null) {
            throw new UsageError(
                '--sentinel-username (REDIS_SENTINEL_USERNAME) needs --sentinel-password (REDIS_SENTINEL_PASSWORD): '
                . 'an ACL user logs in with a password',
            );
        }
        if ($masterName === null) {
            throw new UsageError(
                '--sentinel needs --sentinel-master=NAME (or REDIS_SENTINEL_NAME): '
                . 'the name of the master group the sentinels monitor',
            );
        }
        self::requirePattern(
            $source('sentinel-master', 'REDIS_SENTINEL_NAME'),
            $masterName,
            self::SENTINEL_MASTER_PATTERN,
            '[A-Za-z0-9_.:-]{1,128}',
        );

        return new SentinelConfig(
            self::seeds($source('sentinel', 'REDIS_SENTINELS'), $sentinels),
            $masterName,
            $password,
            $username,
        );
    }

    /**
     * Every entry a HOST:PORT, none empty, as the gateway reads the same variables (a sentinel's
     * port has no default: Redis's 6379 is not Sentinel's).
     *
     * @param string $source the option or variable they came from
     * @param bool $addressOnly the nodes' login and TLS come from --redis, not from each seed
     * @return non-empty-list<RedisEndpoint>
     */
    private static function seeds(string $source, string $list, bool $addressOnly = false): array
    {
        $seeds = [];
        foreach (explode(',', $list) as $seed) {
            $seed = trim($seed);
            $quoted = RedisEndpoint::redact($seed);
            if ($addressOnly && preg_match('#[/@]#', $seed)) {
                throw new UsageError(
                    "{$source} takes HOST:PORT pairs; the nodes' login and TLS come from --redis "
                    . "(REDIS_URL), whose host and port a cluster ignores (got \"{$quoted}\")",
                );
            }
            if (!preg_match('/^[^\/@?#\s]+:\d{1,5}$/', $seed)) {
                throw new UsageError("{$source} must be HOST:PORT pairs separated by commas (got \"{$quoted}\")");
            }
            $seeds[] = self::endpoint($source, $seed);
        }

        return $seeds;
    }
}
