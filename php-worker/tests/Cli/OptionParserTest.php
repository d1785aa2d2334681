<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Cli;

use Jobgate\Worker\Cli\OptionParser;
use Jobgate\Worker\Cli\UsageError;
use Jobgate\Worker\Cli\WorkerConfig;
use PHPUnit\Framework\TestCase;

final class OptionParserTest extends TestCase
{
    private const REQUIRED = ['--queue=emails', '--handlers=handlers.php'];

    public function testDefaults(): void
    {
        $config = $this->parse(self::REQUIRED);

        self::assertSame(['emails'], $config->queues);
        self::assertSame('handlers.php', $config->handlersFile);
        self::assertSame('redis', $config->transport);
        self::assertSame('127.0.0.1', $config->redis->host);
        self::assertSame(6379, $config->redis->port);
        self::assertNull($config->redis->password);
        self::assertSame(0, $config->redis->database);
        self::assertNull($config->clusterSeeds);
        self::assertNull($config->sentinel);
        self::assertSame('jobgate', $config->prefix);
        self::assertNull($config->gatewayUrl);
        self::assertNull($config->apiKey);
        self::assertSame(60, $config->timeoutSeconds);
        self::assertSame(30, $config->leaseSeconds);
        self::assertSame(96, $config->memoryMb);
        self::assertSame(0, $config->maxJobs);
        self::assertSame(0, $config->maxTimeSeconds);
        self::assertSame(3.0, $config->sleepSeconds);
        self::assertSame(3000, $config->blockMs());
        self::assertSame('host:42', $config->workerId);
        self::assertSame('/default/lua', $config->luaDir);
        self::assertSame(86_400_000, $config->jobRetentionMs);
        self::assertSame(7 * 86_400_000, $config->deadRetentionMs);
        self::assertSame(10_000, $config->eventsMaxLen);
    }

    public function testEveryOptionInBothSpellings(): void
    {
        $config = $this->parse([
            '--queue', 'high', '--queue=low', '--handlers', 'h.php', '--transport=redis',
            '--redis=redis://u:p%40ss@redis:6380/2',
            '--prefix=jg', '--timeout=0', '--lease', '9', '--memory=256', '--max-jobs=100',
            '--max-time=3600', '--sleep=0.5', '--worker-id=box-1:7', '--lua-dir=/lua',
            '--job-retention=15m', '--dead-retention', '30s', '--events-max-len=500',
        ]);

        self::assertSame(['high', 'low'], $config->queues, 'priority order kept');
        self::assertSame('h.php', $config->handlersFile);
        self::assertSame('redis', $config->transport);
        self::assertSame('redis', $config->redis->host);
        self::assertSame(6380, $config->redis->port);
        self::assertSame('u', $config->redis->user);
        self::assertSame('p@ss', $config->redis->password);
        self::assertSame(2, $config->redis->database);
        self::assertSame('jg', $config->prefix);
        self::assertSame(0, $config->timeoutSeconds);
        self::assertSame(9, $config->leaseSeconds);
        self::assertSame(256, $config->memoryMb);
        self::assertSame(100, $config->maxJobs);
        self::assertSame(3600, $config->maxTimeSeconds);
        self::assertSame(500, $config->blockMs());
        self::assertSame('box-1:7', $config->workerId);
        self::assertSame('/lua', $config->luaDir);
        self::assertSame(900_000, $config->jobRetentionMs);
        self::assertSame(30_000, $config->deadRetentionMs);
        self::assertSame(500, $config->eventsMaxLen);
    }

    public function testTheHttpTransportsOptionsInBothSpellings(): void
    {
        $config = $this->parse([
            '--queue=q', '--handlers=h.php', '--transport', 'http', '--gateway', 'http://gw:3000', '--api-key=k3y',
        ]);

        self::assertSame('http', $config->transport);
        self::assertSame('http://gw:3000', $config->gatewayUrl);
        self::assertSame('k3y', $config->apiKey);
    }

    /**
     * @dataProvider optionsOfTheOtherTransport
     * @param list<string> $args
     */
    public function testAnOptionOfTheOtherTransportIsAUsageError(array $args, string $expected): void
    {
        $this->expectException(UsageError::class);
        $this->expectExceptionMessage($expected);
        $this->parse(['--queue=q', '--handlers=h.php', ...$args]);
    }

    /** @return array<string, array{list<string>, string}> */
    public static function optionsOfTheOtherTransport(): array
    {
        $http = ['--transport=http', '--gateway=http://gw'];

        return [
            'a gateway for redis' => [['--gateway=http://gw'], '--gateway is for --transport=http: this worker'],
            'a key for redis' => [['--transport=redis', '--api-key=k'], '--api-key is for --transport=http'],
            'a Redis URL for http' => [[...$http, '--redis=redis://r'], '--redis is for --transport=redis: over http'],
            'a cluster for http' => [[...$http, '--cluster=n1:7000'], '--cluster is for --transport=redis'],
            'a prefix for http' => [[...$http, '--prefix=p'], '--prefix is for --transport=redis'],
            'a retention for http' => [[...$http, '--job-retention=1h'], '--job-retention is for --transport=redis'],
        ];
    }

    public function testTheOtherTransportsVariablesAreLeftAlone(): void
    {
        $config = $this->parse(['--queue=q', '--handlers=h.php', '--transport=http', '--gateway=http://gw'], [
            'REDIS_URL' => 'redis://shared:6379',
            'KEY_PREFIX' => 'other-app',
        ]);
        self::assertSame('http', $config->transport, 'a variable may be there for other programs');

        $redis = $this->parse(['--queue=q', '--handlers=h.php'], ['JOBGATE_URL' => 'http://gw']);
        self::assertSame('redis', $redis->transport);
    }

    public function testEnvironmentFallbacks(): void
    {
        $config = $this->parse(self::REQUIRED, [
            'REDIS_URL' => 'redis://:secret@cache:7000',
            'REDIS_CLUSTER_NODES' => 'n1:7001, n2:7002',
            'KEY_PREFIX' => 'prod',
            'JOBGATE_LUA_DIR' => '/opt/lua',
            'JOB_RETENTION' => '48h',
            'DEAD_RETENTION' => '2d',
            'EVENTS_MAX_LEN' => '2000',
        ]);

        self::assertSame('cache', $config->redis->host);
        self::assertSame('secret', $config->redis->password);
        self::assertNull($config->redis->user);
        self::assertSame(['n1:7001', 'n2:7002'], array_map(
            static fn ($seed) => "{$seed->host}:{$seed->port}",
            $config->clusterSeeds ?? [],
        ));
        self::assertSame(['secret', 'secret'], array_map(
            static fn ($seed) => $seed->credentials(),
            $config->clusterSeeds ?? [],
        ), 'every node logs in as REDIS_URL says');
        self::assertSame('prod', $config->prefix);
        self::assertSame('/opt/lua', $config->luaDir);
        self::assertSame(48 * 3_600_000, $config->jobRetentionMs);
        self::assertSame(2 * 86_400_000, $config->deadRetentionMs);
        self::assertSame(2000, $config->eventsMaxLen);

        $http = $this->parse([...self::REQUIRED, '--transport=http'], [
            'JOBGATE_URL' => 'https://jobs.example.com',
            'JOBGATE_API_KEY' => 'from-env',
        ]);
        self::assertSame('https://jobs.example.com', $http->gatewayUrl);
        self::assertSame('from-env', $http->apiKey);
    }

    public function testSecondsTakeDurationsWithUnitsToo(): void
    {
        $config = $this->parse([
            ...self::REQUIRED,
            '--timeout=2m',
            '--lease=90s',
            '--max-time=1h',
            '--sleep=500ms',
        ]);

        self::assertSame([120, 90, 3600, 0.5], [
            $config->timeoutSeconds,
            $config->leaseSeconds,
            $config->maxTimeSeconds,
            $config->sleepSeconds,
        ]);
        self::assertSame(45, $this->parse([...self::REQUIRED, '--timeout=45'])->timeoutSeconds, 'bare: seconds');
    }

    public function testTlsFilesForRediss(): void
    {
        $config = $this->parse([
            ...self::REQUIRED,
            '--redis=rediss://w:pw@cache:6380',
            '--redis-tls-ca=/etc/ca.pem',
            '--redis-tls-cert', '/etc/me.pem',
            '--redis-tls-key=/etc/me.key',
            '--cluster=n1:7000,n2:7001',
        ]);

        $expected = ['stream' => [
            'verify_peer' => true,
            'verify_peer_name' => true,
            'cafile' => '/etc/ca.pem',
            'local_cert' => '/etc/me.pem',
            'local_pk' => '/etc/me.key',
        ]];
        self::assertSame($expected, $config->redis->context());
        self::assertSame([$expected, $expected], array_map(
            static fn ($seed) => $seed->context(),
            $config->clusterSeeds ?? [],
        ), 'cluster nodes connect as --redis says');
        self::assertSame('tls://n1', $config->clusterSeeds[0]->address() ?? null);

        $fromEnv = $this->parse(self::REQUIRED, [
            'REDIS_URL' => 'rediss://cache',
            'REDIS_TLS_CA_FILE' => '/env/ca.pem',
        ]);
        self::assertSame('/env/ca.pem', $fromEnv->redis->tls?->caFile);
        self::assertNull($fromEnv->redis->tls?->certFile);
    }

    public function testOptionsWinOverTheEnvironmentAndEmptyVariablesAreUnset(): void
    {
        $config = $this->parse([...self::REQUIRED, '--redis=redis://cli:6379', '--prefix=cli'], [
            'REDIS_URL' => 'redis://env:6379',
            'KEY_PREFIX' => 'env',
            'JOB_RETENTION' => '  ',
        ]);

        self::assertSame('cli', $config->redis->host);
        self::assertSame('cli', $config->prefix);
        self::assertSame(86_400_000, $config->jobRetentionMs);
    }

    public function testSentinels(): void
    {
        $config = $this->parse([
            ...self::REQUIRED,
            '--sentinel=s1:26379, [::1]:26380',
            '--sentinel-master',
            'jobs.main:1',
            '--sentinel-username=watch',
            '--sentinel-password=s3cret',
            '--redis=rediss://worker:pw@ignored:7000/2',
        ]);

        self::assertNotNull($config->sentinel);
        self::assertSame(['s1:26379', '::1:26380'], array_map(
            static fn ($sentinel) => "{$sentinel->host}:{$sentinel->port}",
            $config->sentinel->sentinels,
        ));
        self::assertSame('jobs.main:1', $config->sentinel->masterName);
        self::assertSame('s3cret', $config->sentinel->password);
        self::assertSame('watch', $config->sentinel->username);
        self::assertSame(['worker', 'pw'], $config->redis->credentials(), 'the data nodes\' login');
        self::assertSame(2, $config->redis->database);
        self::assertNotNull($config->redis->tls);
        self::assertNull($config->clusterSeeds);
    }

    public function testSentinelEnvironmentFallbacks(): void
    {
        $config = $this->parse(self::REQUIRED, [
            'REDIS_SENTINELS' => 's1:26379,s2:26379',
            'REDIS_SENTINEL_NAME' => 'mymaster',
            'REDIS_SENTINEL_USERNAME' => 'env-user',
            'REDIS_SENTINEL_PASSWORD' => 'from-env',
        ]);

        self::assertSame(['s1', 's2'], array_map(
            static fn ($sentinel) => $sentinel->host,
            $config->sentinel?->sentinels ?? [],
        ));
        self::assertSame('mymaster', $config->sentinel?->masterName);
        self::assertSame('from-env', $config->sentinel?->password);
        self::assertSame('env-user', $config->sentinel?->username);

        $withoutPassword = $this->parse([...self::REQUIRED, '--sentinel=s3:26379', '--sentinel-master=m'], [
            'REDIS_SENTINELS' => 's1:26379',
        ]);
        self::assertSame('s3', $withoutPassword->sentinel?->sentinels[0]->host, 'the option wins');
        self::assertNull($withoutPassword->sentinel?->password);
        self::assertNull($withoutPassword->sentinel?->username);
    }

    /** @dataProvider durations */
    public function testDurationsAreWrittenAsTheGatewayWritesThem(string $text, int $ms): void
    {
        self::assertSame($ms, $this->parse([...self::REQUIRED, "--job-retention={$text}"])->jobRetentionMs);
    }

    /** @return array<string, array{string, int}> */
    public static function durations(): array
    {
        return [
            'ms' => ['1500ms', 1500],
            'seconds' => ['30s', 30_000],
            'minutes' => ['15m', 900_000],
            'hours' => ['24h', 86_400_000],
            'days' => ['7d', 604_800_000],
            'bare number = ms' => ['60000', 60_000],
            'units in any case, as the gateway reads them' => ['7D', 604_800_000],
            'MS' => ['2500MS', 2500],
            'leading zeros' => ['0000000000000000001s', 1000],
        ];
    }

    /**
     * @dataProvider variableErrors
     * @param array<string, string> $env
     */
    public function testAValueFromTheEnvironmentIsNamedByItsVariable(
        string $transport,
        array $env,
        string $expected,
    ): void {
        $this->expectException(UsageError::class);
        $this->expectExceptionMessage($expected);
        $this->parse(['--queue=q', '--handlers=h.php', "--transport={$transport}"], $env);
    }

    /** @return array<string, array{string, array<string, string>, string}> */
    public static function variableErrors(): array
    {
        return [
            'retention' => ['redis', ['JOB_RETENTION' => '1w'], 'JOB_RETENTION must be a duration'],
            'dead retention' => ['redis', ['DEAD_RETENTION' => 'forever'], 'DEAD_RETENTION must be a duration'],
            'events cap' => ['redis', ['EVENTS_MAX_LEN' => '5'], 'EVENTS_MAX_LEN must be an integer from 100'],
            'prefix' => ['redis', ['KEY_PREFIX' => 'a:b'], 'KEY_PREFIX must match'],
            'gateway' => ['http', ['JOBGATE_URL' => 'gw:3000'], 'JOBGATE_URL must be an http:// or https:// URL'],
            'gateway with a space' => [
                'http',
                ['JOBGATE_URL' => 'http://127.0.0.1:3000 oops'],
                'JOBGATE_URL must be an http:// or https:// URL',
            ],
            'gateway with a bad port' => [
                'http',
                ['JOBGATE_URL' => 'http://gw:port'],
                'JOBGATE_URL must be an http:// or https:// URL',
            ],
        ];
    }

    public function testTheVariablesOfTheOtherTransportAreLeftAlone(): void
    {
        // Another program's Redis settings, none of them valid for this worker.
        $redisSide = [
            'REDIS_URL' => 'redis://secret@h:0/?db=2',
            'REDIS_TLS_CA_FILE' => '/etc/ssl/ca.pem',
            'REDIS_CLUSTER' => 'n1:7000',
            'REDIS_CLUSTER_NODES' => 'n1',
            'REDIS_SENTINELS' => 'a:1',
            'KEY_PREFIX' => 'bad prefix',
            'JOB_RETENTION' => '0',
            'DEAD_RETENTION' => 'xx',
            'EVENTS_MAX_LEN' => '5',
        ];
        $config = $this->parse(
            ['--queue=q', '--handlers=h.php', '--transport=http'],
            ['JOBGATE_URL' => 'http://gw:3000', ...$redisSide],
        );
        self::assertSame('http', $config->transport);
        self::assertSame('http://gw:3000', $config->gatewayUrl);
        self::assertSame('jobgate', $config->prefix);
        self::assertNull($config->clusterSeeds);
        self::assertNull($config->sentinel);

        $config = $this->parse(
            ['--queue=q', '--handlers=h.php'],
            ['JOBGATE_URL' => 'not a url', 'JOBGATE_API_KEY' => 'k'],
        );
        self::assertSame('redis', $config->transport);
        self::assertNull($config->apiKey, 'the gateway key is not read for the redis transport');
    }

    /**
     * @dataProvider usageErrors
     * @param list<string> $args
     */
    public function testUsageErrors(array $args, string $expected): void
    {
        $this->expectException(UsageError::class);
        $this->expectExceptionMessage($expected);
        $this->parse($args);
    }

    /** @return array<string, array{list<string>, string}> */
    public static function usageErrors(): array
    {
        $handlers = '--handlers=h.php';

        return [
            'no queue' => [[$handlers], '--queue is required'],
            'no handlers' => [['--queue=q'], '--handlers is required'],
            'unknown option' => [['--queue=q', $handlers, '--queues=x'], 'unknown option --queues'],
            'positional argument' => [['--queue=q', $handlers, 'extra'], 'unexpected argument "extra"'],
            'missing value' => [['--queue=q', '--handlers'], '--handlers needs a value'],
            'empty value' => [['--queue=', $handlers], '--queue needs a value'],
            'bad queue name' => [['--queue=a b', $handlers], '--queue must match'],
            'queue named ..' => [['--queue=..', $handlers], '--queue must match [A-Za-z0-9_.-]{1,64}, not . or ..'],
            'queue named .' => [['--queue=.', $handlers], 'not . or ..'],
            'queue name too long' => [['--queue=' . str_repeat('q', 65), $handlers], '--queue must match'],
            'queue twice' => [['--queue=q', '--queue=q', $handlers], 'each queue may be given once'],
            'option twice' => [['--queue=q', $handlers, '--lease=5', '--lease=6'], '--lease may be given once'],
            'bad transport' => [['--queue=q', $handlers, '--transport=amqp'], '--transport must be redis or http'],
            'http without gateway' => [['--queue=q', $handlers, '--transport=http'], 'needs --gateway'],
            'bad gateway' => [['--queue=q', $handlers, '--transport=http', '--gateway=gw:3000'], '--gateway must be'],
            'bad redis url' => [['--queue=q', $handlers, '--redis=http://x'], '--redis: not a Redis URL'],
            'bad database' => [['--queue=q', $handlers, '--redis=redis://x/abc'], 'database'],
            'bad prefix' => [['--queue=q', $handlers, '--prefix=a:b'], '--prefix must match'],
            'bad worker id' => [['--queue=q', $handlers, '--worker-id=a b'], '--worker-id must match'],
            'negative timeout' => [['--queue=q', $handlers, '--timeout=-1'], '--timeout must be whole seconds'],
            'timeout in part seconds' => [
                ['--queue=q', $handlers, '--timeout=1500ms'],
                '--timeout must be whole seconds',
            ],
            'lease past its maximum' => [['--queue=q', $handlers, '--lease=2h'], 'from 1 to 3600'],
            'zero lease' => [['--queue=q', $handlers, '--lease=0'], '--lease must be an integer from 1 to 3600'],
            'fractional memory' => [['--queue=q', $handlers, '--memory=1.5'], '--memory must be an integer'],
            'zero sleep' => [['--queue=q', $handlers, '--sleep=0'], '--sleep must be a number of seconds'],
            'word sleep' => [['--queue=q', $handlers, '--sleep=soon'], '--sleep must be a number of seconds'],
            'sleep past its maximum, as typed' => [['--queue=q', $handlers, '--sleep=10m'], '(got "10m")'],
            'sleep of no time, as typed' => [['--queue=q', $handlers, '--sleep=0ms'], '(got "0ms")'],
            'bad duration' => [['--queue=q', $handlers, '--job-retention=1w'], '--job-retention must be a duration'],
            'too short' => [['--queue=q', $handlers, '--dead-retention=10ms'], 'from 1s to 365d'],
            'overflowing' => [['--queue=q', $handlers, '--dead-retention=999999999999999d'], 'from 1s to 365d'],
            'too many digits' => [
                ['--queue=q', $handlers, '--dead-retention=1234567890123456789012'],
                'from 1s to 365d',
            ],
            'events too small' => [['--queue=q', $handlers, '--events-max-len=5'], 'from 100 to 10000000'],
            'sentinel without master name' => [
                ['--queue=q', $handlers, '--sentinel=s1:26379'],
                '--sentinel needs --sentinel-master=NAME',
            ],
            'bad master name' => [
                ['--queue=q', $handlers, '--sentinel=s1:26379', '--sentinel-master=my master'],
                '--sentinel-master must match [A-Za-z0-9_.:-]{1,128}',
            ],
            'cluster seed without a port' => [['--queue=q', $handlers, '--cluster=n1:7000,n2'], '(got "n2")'],
            'cluster seeds with an empty entry' => [['--queue=q', $handlers, '--cluster=n1:7000,'], '(got "")'],
            'master name without sentinels' => [
                ['--queue=q', $handlers, '--sentinel-master=m'],
                '--sentinel-master (REDIS_SENTINEL_NAME) needs --sentinel',
            ],
            'sentinel password without sentinel' => [
                ['--queue=q', $handlers, '--sentinel-password=secret'],
                '--sentinel-password (REDIS_SENTINEL_PASSWORD) needs --sentinel',
            ],
            'sentinel username without sentinel' => [
                ['--queue=q', $handlers, '--sentinel-username=watch'],
                '--sentinel-username (REDIS_SENTINEL_USERNAME) needs --sentinel',
            ],
            'sentinel username without password' => [
                ['--queue=q', $handlers, '--sentinel=s1:26379', '--sentinel-master=m', '--sentinel-username=watch'],
                '--sentinel-username (REDIS_SENTINEL_USERNAME) needs --sentinel-password',
            ],
            'sentinel and cluster, named as the gateway names them' => [
                ['--queue=q', $handlers, '--sentinel=s1:26379', '--sentinel-master=m', '--cluster=n1:7000'],
                '--sentinel and --cluster (or REDIS_SENTINELS and REDIS_CLUSTER_NODES): choose one',
            ],
            'sentinel without port' => [
                ['--queue=q', $handlers, '--sentinel=s1', '--sentinel-master=m'],
                '--sentinel must be HOST:PORT pairs separated by commas (got "s1")',
            ],
            'sentinel as url' => [
                ['--queue=q', $handlers, '--sentinel=redis://s1:26379', '--sentinel-master=m'],
                '--sentinel must be HOST:PORT pairs',
            ],
            'sentinel port out of range' => [
                ['--queue=q', $handlers, '--sentinel=s1:99999', '--sentinel-master=m'],
                '--sentinel: not a Redis URL',
            ],
            'tls file without rediss' => [
                ['--queue=q', $handlers, '--redis=redis://cache', '--redis-tls-ca=/etc/ca.pem'],
                '--redis-tls-ca is for TLS connections, but --redis (REDIS_URL) uses redis://',
            ],
            'client certificate without key' => [
                ['--queue=q', $handlers, '--redis=rediss://cache', '--redis-tls-cert=/etc/me.pem'],
                '--redis-tls-cert (REDIS_TLS_CERT_FILE) and --redis-tls-key (REDIS_TLS_KEY_FILE) go together',
            ],
            'key without client certificate' => [
                ['--queue=q', $handlers, '--redis=rediss://cache', '--redis-tls-key=/etc/me.key'],
                'go together',
            ],
            'cluster seed with a login' => [
                ['--queue=q', $handlers, '--cluster=redis://:pw@n1:7000'],
                "--cluster takes HOST:PORT pairs; the nodes' login and TLS come from --redis",
            ],
            'no sentinel in the list' => [
                ['--queue=q', $handlers, '--sentinel=,', '--sentinel-master=m'],
                '--sentinel must be HOST:PORT pairs separated by commas (got "")',
            ],
        ];
    }

    public function testRedisUrlsTheGatewayReadsAlikeStillWork(): void
    {
        $passwordOnly = $this->parse([...self::REQUIRED, '--redis=redis://:p%40ss@cache:6380/3']);
        self::assertSame('p@ss', $passwordOnly->redis->credentials());
        self::assertSame(3, $passwordOnly->redis->database);

        $acl = $this->parse(self::REQUIRED, ['REDIS_URL' => 'rediss://us%41:a%2Fb%25c@cache']);
        self::assertSame(['usA', 'a/b%c'], $acl->redis->credentials());

        self::assertNull(
            $this->parse([...self::REQUIRED, '--redis=redis://:@cache'])->redis->credentials(),
            'an empty login is none, as for ioredis',
        );
    }

    public function testAClusterTakesDatabase0OrNone(): void
    {
        foreach (['redis://:pw@n1:7000/0', 'redis://:pw@n1:7000/', 'redis://:pw@n1:7000'] as $url) {
            $config = $this->parse(self::REQUIRED, ['REDIS_URL' => $url, 'REDIS_CLUSTER_NODES' => 'n1:7000']);
            self::assertSame(0, $config->redis->database, $url);
            self::assertSame(['pw'], array_map(
                static fn ($seed) => $seed->credentials(),
                $config->clusterSeeds ?? [],
            ), $url);
        }
    }

    /**
     * A wrong Redis setting names where it came from (the option, else the variable) and never
     * quotes a password.
     *
     * @dataProvider badRedisSettings
     * @param list<string> $args
     * @param array<string, string> $env
     */
    public function testABadRedisSettingNamesItsSourceAndHidesThePassword(
        array $args,
        array $env,
        string $expected,
        string $secret,
    ): void {
        $message = $this->usageError([...self::REQUIRED, ...$args], $env)->getMessage();

        self::assertStringStartsWith($expected, $message);
        self::assertStringNotContainsString($secret, $message);
    }

    /** @return array<string, array{list<string>, array<string, string>, string, string}> */
    public static function badRedisSettings(): array
    {
        $form = 'redis[s]://[[user]:password@]host[:port][/db]';
        $query = 'a Redis URL takes no query string or fragment: name the database in the path, as in '
            . 'redis://host:6379/2';
        $colon = 'the login of a Redis URL has no password: write the password after a colon: '
            . 'redis://:password@host, or redis://user:password@host';
        $percent = 'the login of a Redis URL has a % that starts no escape: percent-encode a % in the password as %25';

        return [
            // R1, R2: the login is masked, the source named
            'REDIS_URL not a Redis URL' => [
                [],
                ['REDIS_URL' => 'http://admin:hunter2@db.example:6379/x'],
                "REDIS_URL: not a Redis URL, {$form} (got \"http://***@db.example:6379/x\")",
                'hunter2',
            ],
            'REDIS_URL with a database that is no number' => [
                [],
                ['REDIS_URL' => 'redis://admin:hunter2@db.example:6379/x'],
                'REDIS_URL: the database of a Redis URL must be a number, as in /2 '
                . '(got "redis://***@db.example:6379/x")',
                'hunter2',
            ],
            '--redis with a database that is no number, over a good REDIS_URL' => [
                ['--redis=redis://admin:hunter2@db.example:6379/x'],
                ['REDIS_URL' => 'redis://db.example:6379'],
                '--redis: the database of a Redis URL must be a number, as in /2 (got "redis://***@db.example:6379/x")',
                'hunter2',
            ],
            'a password with an @ of its own' => [
                ['--redis=redis://:hun@ter2@db.example:6379/x'],
                [],
                '--redis: the database of a Redis URL must be a number, as in /2 (got "redis://***@db.example:6379/x")',
                'ter2',
            ],
            // R3
            'REDIS_URL with ?db=' => [
                [],
                ['REDIS_URL' => 'redis://:hunter2@db.example:6379?db=3'],
                "REDIS_URL: {$query}",
                'hunter2',
            ],
            '--redis with ?password=' => [
                ['--redis=redis://db.example:6379/0?password=hunter2'],
                [],
                "--redis: {$query}",
                'hunter2',
            ],
            'REDIS_URL with a fragment' => [
                [],
                ['REDIS_URL' => 'rediss://db.example/1#hunter2'],
                "REDIS_URL: {$query}",
                'hunter2',
            ],
            // R4
            'REDIS_URL with a login without a colon' => [
                [],
                ['REDIS_URL' => 'redis://hunter2@db.example:6379'],
                "REDIS_URL: {$colon} (got \"redis://***@db.example:6379\")",
                'hunter2',
            ],
            '--redis with a login without a colon' => [
                ['--redis=rediss://hunter2@db.example'],
                [],
                "--redis: {$colon}",
                'hunter2',
            ],
            '--redis with a user and an empty password' => [
                ['--redis=redis://hunter2:@db.example'],
                [],
                "--redis: {$colon}",
                'hunter2',
            ],
            // R5
            'REDIS_URL with a % that is no escape' => [
                [],
                ['REDIS_URL' => 'redis://:100%zz@db.example'],
                "REDIS_URL: {$percent} (got \"redis://***@db.example\")",
                '100%zz',
            ],
            '--redis with a password ending in %' => [
                ['--redis=redis://admin:hunter2%@db.example'],
                [],
                "--redis: {$percent}",
                'hunter2',
            ],
            '--redis with a % in the user' => [
                ['--redis=redis://ad%min:hunter2@db.example'],
                [],
                "--redis: {$percent}",
                'hunter2',
            ],
            // R6
            'REDIS_URL with a database for REDIS_CLUSTER_NODES' => [
                [],
                ['REDIS_URL' => 'redis://:hunter2@n1:7000/3', 'REDIS_CLUSTER_NODES' => 'n1:7000'],
                'REDIS_URL names database 3, but a Redis Cluster (REDIS_CLUSTER_NODES) has only database 0',
                'hunter2',
            ],
            '--redis with a database for --cluster' => [
                ['--redis=redis://:hunter2@n1:7000/2', '--cluster=n1:7000'],
                ['REDIS_URL' => 'redis://n1:7000/0', 'REDIS_CLUSTER_NODES' => 'n1:7000'],
                '--redis names database 2, but a Redis Cluster (--cluster) has only database 0',
                'hunter2',
            ],
            'REDIS_URL with a database for --cluster' => [
                ['--cluster=n1:7000'],
                ['REDIS_URL' => 'redis://:hunter2@n1:7000/1'],
                'REDIS_URL names database 1, but a Redis Cluster (--cluster) has only database 0',
                'hunter2',
            ],
            // R7
            'REDIS_CLUSTER' => [
                [],
                ['REDIS_CLUSTER' => 'n1:7000', 'REDIS_URL' => 'redis://:hunter2@n1:7000'],
                "REDIS_CLUSTER is no longer read: name the cluster's seed nodes in REDIS_CLUSTER_NODES",
                'hunter2',
            ],
            'REDIS_CLUSTER beside REDIS_CLUSTER_NODES and --cluster' => [
                ['--cluster=n1:7000'],
                ['REDIS_CLUSTER' => 'n2:7000', 'REDIS_CLUSTER_NODES' => 'n1:7000'],
                'REDIS_CLUSTER is no longer read',
                'n2',
            ],
            // R1, R2 for cluster seeds and sentinels
            'REDIS_CLUSTER_NODES with a login' => [
                [],
                ['REDIS_CLUSTER_NODES' => 'n1:7000, admin:hunter2@n2:7001'],
                'REDIS_CLUSTER_NODES takes HOST:PORT pairs; the nodes\' login and TLS come from --redis (REDIS_URL), '
                . 'whose host and port a cluster ignores (got "***@n2:7001")',
                'hunter2',
            ],
            '--cluster as a URL with a login' => [
                ['--cluster=redis://:hunter2@n1:7000'],
                ['REDIS_CLUSTER_NODES' => 'n1:7000'],
                '--cluster takes HOST:PORT pairs',
                'hunter2',
            ],
            'REDIS_CLUSTER_NODES without a port' => [
                [],
                ['REDIS_CLUSTER_NODES' => 'n1'],
                'REDIS_CLUSTER_NODES must be HOST:PORT pairs separated by commas (got "n1")',
                'hunter2',
            ],
            'REDIS_CLUSTER_NODES with a query' => [
                [],
                ['REDIS_CLUSTER_NODES' => 'n1?password=hunter2:7000'],
                'REDIS_CLUSTER_NODES must be HOST:PORT pairs separated by commas (got "n1?***")',
                'hunter2',
            ],
            'REDIS_CLUSTER_NODES with a port out of range' => [
                [],
                ['REDIS_CLUSTER_NODES' => 'n1:99999'],
                'REDIS_CLUSTER_NODES: not a Redis URL',
                'hunter2',
            ],
            'REDIS_SENTINELS as a URL with a login' => [
                [],
                ['REDIS_SENTINELS' => 'redis://:hunter2@s1:26379', 'REDIS_SENTINEL_NAME' => 'm'],
                'REDIS_SENTINELS must be HOST:PORT pairs separated by commas (got "redis://***@s1:26379")',
                'hunter2',
            ],
            '--sentinel with a login' => [
                ['--sentinel=admin:hunter2@s1:26379'],
                ['REDIS_SENTINELS' => 's1:26379', 'REDIS_SENTINEL_NAME' => 'm'],
                '--sentinel must be HOST:PORT pairs separated by commas (got "***@s1:26379")',
                'hunter2',
            ],
            'REDIS_SENTINELS with a port out of range' => [
                [],
                ['REDIS_SENTINELS' => 's1:99999', 'REDIS_SENTINEL_NAME' => 'm'],
                'REDIS_SENTINELS: not a Redis URL',
                'hunter2',
            ],
            'REDIS_SENTINEL_NAME that is no name' => [
                [],
                ['REDIS_SENTINELS' => 's1:26379', 'REDIS_SENTINEL_NAME' => 'my master'],
                'REDIS_SENTINEL_NAME must match [A-Za-z0-9_.:-]{1,128}',
                'hunter2',
            ],
        ];
    }

    public function testSentinelsInTheEnvironmentConflictWithAClusterToo(): void
    {
        $this->expectException(UsageError::class);
        $this->expectExceptionMessage('choose one');
        $this->parse(self::REQUIRED, [
            'REDIS_SENTINELS' => 's1:26379',
            'REDIS_SENTINEL_NAME' => 'm',
            'REDIS_CLUSTER_NODES' => 'n1:7000',
        ]);
    }

    public function testHelpIsRecognisedAnywhere(): void
    {
        self::assertTrue(OptionParser::wantsHelp(['--queue=q', '--help']));
        self::assertFalse(OptionParser::wantsHelp(['--queue=q']));
    }

    /**
     * @param list<string> $args
     * @param array<string, string> $env
     */
    private function usageError(array $args, array $env): UsageError
    {
        try {
            $this->parse($args, $env);
        } catch (\Throwable $thrown) {
            self::assertSame(UsageError::class, $thrown::class, $thrown->getMessage());

            return $thrown;
        }
        self::fail('no UsageError');
    }

    /**
     * @param list<string> $args
     * @param array<string, string> $env
     */
    private function parse(array $args, array $env = []): WorkerConfig
    {
        return (new OptionParser($env, '/default/lua', 'host:42'))->parse($args);
    }
}
