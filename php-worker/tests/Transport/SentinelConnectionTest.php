<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Transport;

use Jobgate\Worker\Tests\Fakes\FakeClock;
use Jobgate\Worker\Transport\Redis\RedisEndpoint;
use Jobgate\Worker\Transport\Redis\Script;
use Jobgate\Worker\Transport\Redis\ScriptCall;
use Jobgate\Worker\Transport\Redis\SentinelConfig;
use Jobgate\Worker\Transport\Redis\SentinelConnection;
use Jobgate\Worker\Transport\Unavailable;
use PHPUnit\Framework\TestCase;
use Redis;
use RedisException;

/**
 * The primary asked from the sentinels, and followed across a failover, on mocked phpredis
 * clients: each sentinel and each data node is a host:port whose answers the test sets.
 */
final class SentinelConnectionTest extends TestCase
{
    /** A sentinel whose connect() returns false. */
    private const REFUSES = 'refuses';
    /** A sentinel whose connect() throws. */
    private const TIMES_OUT = 'times out';
    private const PRIMARY = ['10.0.0.1', '6379'];
    private const NEW_PRIMARY = ['10.0.0.2', '6380'];

    /**
     * @var array<string, array{string, string}|null|string|RedisException> each sentinel's answer
     *      to get-master-addr-by-name (an address, null, REFUSES, TIMES_OUT, or an error), by host:port
     */
    private array $sentinels = [];
    /** @var array<string, string> the role of each data node (master when not set), by host:port */
    private array $roles = [];
    /** @var array<string, true> data nodes that answer writes with READONLY, by host:port */
    private array $readOnly = [];
    /** @var list<string> what reached the clients, in order */
    private array $log = [];
    private FakeClock $clock;
    private Script $script;

    protected function setUp(): void
    {
        if (!extension_loaded('redis')) {
            self::markTestSkipped('ext-redis is not loaded');
        }
        $this->clock = new FakeClock();
        $this->script = new Script('ack', 0, 'return {"OK", 1}');
    }

    public function testTheFirstSentinelToAnswerWins(): void
    {
        $this->sentinels = ['s1:26379' => self::PRIMARY, 's2:26379' => self::NEW_PRIMARY];

        self::assertSame(['OK', 1], $this->runScript($this->connection(['s1:26379', 's2:26379'])));
        self::assertSame([
            'connect sentinel s1:26379 timeouts 1/1',
            'ask s1:26379 SENTINEL get-master-addr-by-name mymaster',
            'connect 10.0.0.1:6379 timeouts 1/5',
            'ROLE on 10.0.0.1:6379',
            'script on 10.0.0.1:6379',
        ], $this->log, 'no AUTH without a password; s2 is never asked');
    }

    public function testUnreachableSentinelsAndOnesThatDoNotKnowTheMasterAreSkipped(): void
    {
        $this->sentinels = [
            's1:26379' => self::REFUSES,
            's2:26379' => self::TIMES_OUT,
            's3:26379' => null,
            's4:26379' => self::NEW_PRIMARY,
        ];

        $this->runScript($this->connection(['s1:26379', 's2:26379', 's3:26379', 's4:26379']));

        self::assertContains('connect 10.0.0.2:6380 timeouts 1/5', $this->log);
        self::assertContains('script on 10.0.0.2:6380', $this->log);
        self::assertSame(
            ['close sentinel s1:26379', 'close sentinel s2:26379', 'close sentinel s3:26379'],
            array_values(preg_grep('/^close/', $this->log)),
            'the one that answered stays open',
        );
    }

    public function testNoSentinelGivingAnAddressIsAnOutageNamingTheMaster(): void
    {
        $this->sentinels = ['s1:26379' => self::REFUSES, 's2:26379' => null];
        $connection = $this->connection(['s1:26379', 's2:26379']);

        try {
            $this->runScript($connection);
            self::fail('expected an outage');
        } catch (Unavailable $unavailable) {
            self::assertSame(
                'no sentinel gave the address of master "mymaster" '
                . '(s1:26379: cannot connect to s1:26379; s2:26379 does not know it)',
                $unavailable->getMessage(),
            );
        }
        self::assertSame([], preg_grep('/^(connect|ROLE|script) 10\./', $this->log), 'no data node reached');

        $this->sentinels['s2:26379'] = self::PRIMARY;
        self::assertSame(['OK', 1], $this->runScript($connection), 'asked again on the next command');
    }

    public function testTheSentinelPasswordIsSentWithAuth(): void
    {
        $this->sentinels = ['s1:26379' => self::PRIMARY];

        $this->runScript($this->connection(['s1:26379'], sentinelPassword: 'sentinel-secret'));

        self::assertSame('auth sentinel s1:26379 "sentinel-secret"', $this->log[1]);
        self::assertSame('ask s1:26379 SENTINEL get-master-addr-by-name mymaster', $this->log[2]);
    }

    public function testTheSentinelAclUserLogsInWithItsPassword(): void
    {
        $this->sentinels = ['s1:26379' => self::PRIMARY];

        $this->runScript($this->connection(['s1:26379'], sentinelPassword: 'sentinel-secret', sentinelUser: 'watch'));

        self::assertSame('auth sentinel s1:26379 ["watch","sentinel-secret"]', $this->log[1]);
        self::assertSame('ask s1:26379 SENTINEL get-master-addr-by-name mymaster', $this->log[2]);
    }

    public function testThePrimaryGetsTheDataNodesCredentialsDatabaseAndTlsButNotTheirAddress(): void
    {
        $this->sentinels = ['s1:26379' => self::PRIMARY];

        $this->runScript($this->connection(['s1:26379'], dataNodes: 'rediss://worker:pw@ignored:7000/4'));

        self::assertSame([
            'connect tls://10.0.0.1:6379 timeouts 1/5',
            'auth 10.0.0.1:6379 ["worker","pw"]',
            'select 10.0.0.1:6379 4',
            'ROLE on 10.0.0.1:6379',
            'script on 10.0.0.1:6379',
        ], array_slice($this->log, 2));
    }

    public function testANodeThatIsNotTheMasterIsAnOutage(): void
    {
        $this->sentinels = ['s1:26379' => self::PRIMARY];
        $this->roles['10.0.0.1:6379'] = 'slave';
        $connection = $this->connection(['s1:26379']);

        try {
            $this->runScript($connection);
            self::fail('expected an outage');
        } catch (Unavailable $unavailable) {
            self::assertSame(
                '10.0.0.1:6379, named master of "mymaster" by a sentinel, is not a master (its role is "slave")',
                $unavailable->getMessage(),
            );
        }
        self::assertContains('close 10.0.0.1:6379', $this->log);
        self::assertNotContains('script on 10.0.0.1:6379', $this->log);

        $this->sentinels['s1:26379'] = self::NEW_PRIMARY;
        $this->runScript($connection);
        self::assertContains('script on 10.0.0.2:6380', $this->log, 'the sentinel caught up');
    }

    public function testAfterTheCheckIntervalAChangedAddressMovesTheNextCommandToTheNewPrimary(): void
    {
        $this->sentinels = ['s1:26379' => self::PRIMARY];
        $connection = $this->connection(['s1:26379']);
        $this->runScript($connection);
        $this->sentinels['s1:26379'] = self::NEW_PRIMARY;

        $this->clock->advance(999);
        $this->runScript($connection);
        self::assertSame('script on 10.0.0.1:6379', $this->log[array_key_last($this->log)]);
        self::assertCount(1, preg_grep('/^ask/', $this->log), 'not asked again within the interval');

        $this->clock->advance(1);
        $connection->waitForWake(['wake'], 0.5);
        self::assertSame([
            'ask s1:26379 SENTINEL get-master-addr-by-name mymaster',
            'close 10.0.0.1:6379',
            'ask s1:26379 SENTINEL get-master-addr-by-name mymaster',
            'connect 10.0.0.2:6380 timeouts 1/5',
            'ROLE on 10.0.0.2:6380',
            'BLPOP wake 0.500 on 10.0.0.2:6380',
        ], array_slice($this->log, -6));
        self::assertCount(1, preg_grep('/^connect sentinel/', $this->log), 'the sentinel stays open');
    }

    public function testAnUnchangedAddressKeepsTheConnection(): void
    {
        $this->sentinels = ['s1:26379' => self::PRIMARY];
        $connection = $this->connection(['s1:26379']);
        $this->runScript($connection);

        $this->clock->advance(1000);
        // A script the server has not run for this connection goes alone, not in a pipeline.
        $connection->runScripts([new ScriptCall(new Script('reserve', 0, 'return {"EMPTY"}'), [], [])]);

        self::assertCount(2, preg_grep('/^ask/', $this->log));
        self::assertCount(1, preg_grep('/^connect 10\./', $this->log));
        self::assertSame('script on 10.0.0.1:6379', $this->log[array_key_last($this->log)]);
    }

    public function testAnErrorDuringACheckKeepsTheConnectionAndALaterCheckAsksAgain(): void
    {
        $this->sentinels = ['s1:26379' => self::PRIMARY];
        $connection = $this->connection(['s1:26379']);
        $this->runScript($connection);

        $this->sentinels['s1:26379'] = new RedisException('read error on connection');
        $this->clock->advance(1000);
        self::assertSame(['OK', 1], $this->runScript($connection));
        self::assertSame('script on 10.0.0.1:6379', $this->log[array_key_last($this->log)]);
        self::assertCount(1, preg_grep('/^connect 10\./', $this->log));

        $this->sentinels['s1:26379'] = self::NEW_PRIMARY;
        $this->clock->advance(2000);
        $this->runScript($connection);
        self::assertSame('script on 10.0.0.2:6380', $this->log[array_key_last($this->log)]);
        self::assertGreaterThan(1, count(preg_grep('/^connect sentinel/', $this->log)), 'reopened after the error');
    }

    public function testWhileNoSentinelAnswersTheChecksComeLessAndLessOftenAndAnAnswerResetsThem(): void
    {
        $this->sentinels = ['s1:26379' => self::PRIMARY];
        $connection = $this->connection(['s1:26379']);
        $this->runScript($connection);
        $this->sentinels['s1:26379'] = self::TIMES_OUT;
        $asked = fn (): int => count(preg_grep('/^connect sentinel/', $this->log));

        // A check every second of commands would pay a hung sentinel's timeouts every time.
        $checks = [];
        for ($second = 1; $second <= 70; $second++) {
            $this->clock->advance(1000);
            $before = $asked();
            $this->runScript($connection);
            if ($asked() > $before) {
                $checks[] = $second;
            }
        }
        self::assertSame([1, 3, 7, 15, 31, 63], $checks, 'waits of 2, 4, 8, 16 and at most 32 s');
        self::assertSame('script on 10.0.0.1:6379', $this->log[array_key_last($this->log)]);

        $this->sentinels['s1:26379'] = self::PRIMARY;
        $this->clock->advance(32_000);
        $this->runScript($connection);
        $questions = fn (): int => count(preg_grep('/^ask /', $this->log));
        $before = $questions();
        $this->clock->advance(1000);
        $this->runScript($connection);
        self::assertSame($before + 1, $questions(), 'an answer: a check every second again');
    }

    public function testADemotedPrimaryAnsweringReadonlyMakesTheNextCommandAskTheSentinelsAgain(): void
    {
        $this->sentinels = ['s1:26379' => self::PRIMARY];
        $connection = $this->connection(['s1:26379']);
        $this->runScript($connection);
        $this->readOnly['10.0.0.1:6379'] = true;
        $this->sentinels['s1:26379'] = self::NEW_PRIMARY;

        try {
            $this->runScript($connection);
            self::fail('expected an outage');
        } catch (Unavailable $unavailable) {
            self::assertStringStartsWith('READONLY', $unavailable->getMessage());
        }

        self::assertSame(['OK', 1], $this->runScript($connection), 'within the check interval still');
        self::assertSame('script on 10.0.0.2:6380', $this->log[array_key_last($this->log)]);
    }

    /** @return array<int, mixed> */
    private function runScript(SentinelConnection $connection): array
    {
        return $connection->runScript($this->script, [], []);
    }

    /** @param list<string> $sentinels host:port, in the order to ask them */
    private function connection(
        array $sentinels,
        ?string $sentinelPassword = null,
        string $dataNodes = 'redis://ignored:7000',
        ?string $sentinelUser = null,
    ): SentinelConnection {
        return new SentinelConnection(
            new SentinelConfig(
                array_map(static fn (string $sentinel) => RedisEndpoint::fromUrl($sentinel), $sentinels),
                'mymaster',
                $sentinelPassword,
                $sentinelUser,
            ),
            RedisEndpoint::fromUrl($dataNodes),
            1.0,
            5.0,
            $this->clock,
            1000,
            fn (): Redis => $this->sentinelClient(),
            fn (): Redis => $this->dataNodeClient(),
        );
    }

    private function sentinelClient(): Redis
    {
        $client = $this->createMock(Redis::class);
        $at = '?';
        $client->method('connect')->willReturnCallback(
            function (string $host, int $port, float $timeout, $reserved, int $retry, float $readTimeout) use (&$at) {
                $at = "{$host}:{$port}";
                $this->log[] = "connect sentinel {$at} timeouts {$timeout}/{$readTimeout}";
                $answer = array_key_exists($at, $this->sentinels) ? $this->sentinels[$at] : self::REFUSES;
                if ($answer === self::TIMES_OUT) {
                    throw new RedisException('Connection timed out');
                }

                return $answer !== self::REFUSES;
            },
        );
        $client->method('auth')->willReturnCallback(function ($credentials) use (&$at): bool {
            $this->log[] = "auth sentinel {$at} " . json_encode($credentials);

            return true;
        });
        $client->method('rawCommand')->willReturnCallback(function (string ...$command) use (&$at) {
            $this->log[] = "ask {$at} " . implode(' ', $command);
            $answer = $this->sentinels[$at];
            if ($answer instanceof RedisException) {
                throw $answer;
            }

            return $answer;
        });
        $client->method('close')->willReturnCallback(function () use (&$at): bool {
            $this->log[] = "close sentinel {$at}";

            return true;
        });

        return $client;
    }

    private function dataNodeClient(): Redis
    {
        $client = $this->createMock(Redis::class);
        $at = '?';
        $error = null;
        $client->method('connect')->willReturnCallback(
            function (string $host, int $port, float $timeout, $reserved, int $retry, float $readTimeout) use (&$at) {
                $at = preg_replace('#^tls://#', '', $host) . ":{$port}";
                $this->log[] = "connect {$host}:{$port} timeouts {$timeout}/{$readTimeout}";

                return true;
            },
        );
        $client->method('auth')->willReturnCallback(function ($credentials) use (&$at): bool {
            $this->log[] = "auth {$at} " . json_encode($credentials);

            return true;
        });
        $client->method('select')->willReturnCallback(function (int $database) use (&$at): bool {
            $this->log[] = "select {$at} {$database}";

            return true;
        });
        $client->method('rawCommand')->willReturnCallback(function (string ...$command) use (&$at) {
            $this->log[] = implode(' ', $command) . " on {$at}";

            return $command[0] === 'ROLE' ? [$this->roles[$at] ?? 'master', 0, []] : null;
        });
        $client->method('evalSha')->willReturnCallback(function () use (&$at, &$error) {
            $this->log[] = "script on {$at}";
            if (isset($this->readOnly[$at])) {
                $error = "READONLY You can't write against a read only replica.";

                return false;
            }

            return ['OK', 1];
        });
        $client->method('getLastError')->willReturnCallback(function () use (&$error) {
            return $error;
        });
        $client->method('clearLastError')->willReturnCallback(function () use (&$error): bool {
            $error = null;

            return true;
        });
        $client->method('close')->willReturnCallback(function () use (&$at): bool {
            $this->log[] = "close {$at}";

            return true;
        });

        return $client;
    }
}
