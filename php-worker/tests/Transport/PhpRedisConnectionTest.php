<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Transport;

use Jobgate\Worker\ConfigError;
use Jobgate\Worker\Transport\Redis\PhpRedisConnection;
use Jobgate\Worker\Transport\Redis\RedisEndpoint;
use Jobgate\Worker\Transport\Redis\Script;
use Jobgate\Worker\Transport\Redis\ScriptFailed;
use Jobgate\Worker\Transport\Redis\ScriptLibrary;
use Jobgate\Worker\Transport\Redis\StandaloneConnection;
use Jobgate\Worker\Transport\Unavailable;
use PHPUnit\Framework\MockObject\MockObject;
use PHPUnit\Framework\TestCase;
use Redis;
use RedisCluster;
use RedisException;

/**
 * Scripts by SHA with the NOSCRIPT fallback, and outages told from bugs, on a mocked phpredis.
 */
final class PhpRedisConnectionTest extends TestCase
{
    /** @var Redis&MockObject */
    private Redis $redis;
    private int $connects = 0;
    private ?string $lastError = null;

    protected function setUp(): void
    {
        if (!extension_loaded('redis')) {
            self::markTestSkipped('ext-redis is not loaded');
        }
        $this->redis = $this->createMock(Redis::class);
        $this->redis->method('getLastError')->willReturnCallback(fn () => $this->lastError);
        $this->redis->method('clearLastError')->willReturnCallback(function (): bool {
            $this->lastError = null;

            return true;
        });
    }

    public function testAScriptRunsByItsSha(): void
    {
        $script = new Script('ack', 4, 'return {"OK", 1}');
        $this->redis->expects(self::once())->method('evalSha')
            ->with(sha1('return {"OK", 1}'), ['k1', 'k2', 'k3', 'k4', 'a1'], 4)
            ->willReturn(['OK', 1]);
        $this->redis->expects(self::never())->method('eval');

        self::assertSame(['OK', 1], $this->connection()->runScript($script, ['k1', 'k2', 'k3', 'k4'], ['a1']));
    }

    public function testAnUnknownShaFallsBackToTheSource(): void
    {
        $script = new Script('ack', 1, 'return {"OK", 1}');
        $this->redis->method('evalSha')->willReturnCallback(function () {
            $this->lastError = 'NOSCRIPT No matching script. Please use EVAL.';

            return false;
        });
        $this->redis->expects(self::once())->method('eval')
            ->with('return {"OK", 1}', ['k', 'a'], 1)
            ->willReturn(['OK', 1]);

        self::assertSame(['OK', 1], $this->connection()->runScript($script, ['k'], ['a']));
    }

    public function testAnyOtherErrorReplyIsABug(): void
    {
        $this->redis->method('evalSha')->willReturnCallback(function () {
            $this->lastError = "ERR user_script:1: Script attempted to access nonexistent global variable 'x'";

            return false;
        });

        $this->expectException(ScriptFailed::class);
        $this->expectExceptionMessage('ack: ERR user_script');
        $this->connection()->runScript(new Script('ack', 0, 'return x'), [], []);
    }

    public function testAServerThatCannotServeNowIsAnOutage(): void
    {
        $this->redis->method('evalSha')->willReturnCallback(function () {
            $this->lastError = 'LOADING Redis is loading the dataset in memory';

            return false;
        });

        $this->expectException(Unavailable::class);
        $this->connection()->runScript(new Script('ack', 0, 'return 1'), [], []);
    }

    public function testAConnectionErrorIsAnOutageAndTheNextCallReconnects(): void
    {
        $this->redis->method('evalSha')->willReturnOnConsecutiveCalls(
            self::throwException(new RedisException('read error on connection')),
            ['OK', 1],
        );
        $connection = $this->connection();
        try {
            $connection->runScript(new Script('ack', 0, 'return 1'), [], []);
            self::fail('expected an outage');
        } catch (Unavailable $unavailable) {
            self::assertSame('read error on connection', $unavailable->getMessage());
        }

        self::assertSame(['OK', 1], $connection->runScript(new Script('ack', 0, 'return 1'), [], []));
        self::assertSame(2, $this->connects);
    }

    public function testOneServerConnectsLogsInSelectsAndBlocksInDecimalSeconds(): void
    {
        $this->redis->expects(self::once())->method('connect')->with('10.0.0.5', 6380, 2.0, null, 0, 8.0)
            ->willReturn(true);
        $this->redis->expects(self::once())->method('auth')->with(['worker', 'pw'])->willReturn(true);
        $this->redis->expects(self::once())->method('select')->with(4)->willReturn(true);
        $this->redis->expects(self::once())->method('rawCommand')->with('BLPOP', 'a:wake', 'b:wake', '0.250');

        $connection = new StandaloneConnection(
            RedisEndpoint::fromUrl('redis://worker:pw@10.0.0.5:6380/4'),
            2.0,
            8.0,
            fn () => $this->redis,
        );
        $connection->waitForWake(['a:wake', 'b:wake'], 0.25);
    }

    public function testAFailedLoginIsAnOutageNamingTheReason(): void
    {
        $this->redis->method('connect')->willReturn(true);
        $this->redis->method('auth')->willReturnCallback(function (): bool {
            $this->lastError = 'WRONGPASS invalid username-password pair';

            return false;
        });
        $endpoint = RedisEndpoint::fromUrl('redis://:bad@h');
        $connection = new StandaloneConnection($endpoint, 1.0, 5.0, fn () => $this->redis);

        $this->expectException(Unavailable::class);
        $this->expectExceptionMessage('authentication failed: WRONGPASS');
        $connection->runScript(new Script('ack', 0, 'return 1'), [], []);
    }

    public function testNoBlockingForLessThanAMillisecond(): void
    {
        $this->redis->expects(self::never())->method('rawCommand');

        // BLPOP with a timeout of 0 would block forever.
        $this->connection()->waitForWake(['a:wake'], 0.0);
    }

    public function testTheLibraryNeedsEveryWorkerScript(): void
    {
        $directory = sys_get_temp_dir() . '/jobgate-lua-' . bin2hex(random_bytes(4));
        mkdir($directory);
        file_put_contents("{$directory}/reserve-6.lua", 'return 1');
        try {
            $this->expectException(ConfigError::class);
            $this->expectExceptionMessage('ack-4.lua');
            ScriptLibrary::fromDirectory($directory);
        } finally {
            unlink("{$directory}/reserve-6.lua");
            rmdir($directory);
        }
    }

    public function testTheSharedScriptsLoadUnchanged(): void
    {
        $library = ScriptLibrary::fromDirectory(__DIR__ . '/../../../lua');

        $reserve = $library->get('reserve');
        self::assertSame(6, $reserve->numberOfKeys);
        self::assertSame(sha1_file(__DIR__ . '/../../../lua/reserve-6.lua'), $reserve->sha1);
    }

    public function testRedisUrls(): void
    {
        $plain = RedisEndpoint::fromUrl('redis://127.0.0.1:6390');
        self::assertSame(
            ['127.0.0.1', 6390, null, false],
            [$plain->host, $plain->port, $plain->credentials(), $plain->tls],
        );

        $acl = RedisEndpoint::fromUrl('rediss://worker:s%3Acret@[::1]:7000/3');
        self::assertSame('::1', $acl->host);
        self::assertSame(['worker', 's:cret'], $acl->credentials());
        self::assertSame(3, $acl->database);
        self::assertSame('tls://::1', $acl->address());

        self::assertSame('only-password', RedisEndpoint::fromUrl('redis://:only-password@h')->credentials());
        self::assertSame(6379, RedisEndpoint::fromUrl('node-1')->port, 'a bare host (cluster seed)');
    }

    private function connection(): PhpRedisConnection
    {
        return new class ($this->redis, $this->connects) extends PhpRedisConnection {
            /** @param-out int $connects */
            public function __construct(private readonly Redis $redis, private int &$connects)
            {
                parent::__construct(1.0, 5.0);
            }

            protected function connect(): Redis
            {
                $this->connects++;

                return $this->redis;
            }

            protected function blockingPop(Redis|RedisCluster $client, array $wakeKeys, float $seconds): void
            {
                $client->rawCommand('BLPOP', ...$wakeKeys);
            }
        };
    }
}
