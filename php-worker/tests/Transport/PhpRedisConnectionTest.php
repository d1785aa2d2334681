<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Transport;

use Jobgate\Worker\Transport\Redis\PhpRedisConnection;
use Jobgate\Worker\Transport\Redis\RedisEndpoint;
use Jobgate\Worker\Transport\Redis\TlsSettings;
use Jobgate\Worker\Transport\Redis\Script;
use Jobgate\Worker\Transport\Redis\ScriptCall;
use Jobgate\Worker\Transport\Redis\ScriptFailed;
use Jobgate\Worker\Transport\Redis\StandaloneConnection;
use Jobgate\Worker\Transport\Unavailable;
use PHPUnit\Framework\MockObject\MockObject;
use PHPUnit\Framework\TestCase;
use Redis;
use RedisException;

/**
 * Scripts by SHA with the NOSCRIPT fallback, several in one pipeline, and outages told from
 * bugs, on a mocked phpredis.
 */
final class PhpRedisConnectionTest extends TestCase
{
    private const ACK_SOURCE = 'return {"OK", 1}';
    private const RESERVE_SOURCE = 'return {"EMPTY", -1}';

    /** @var Redis&MockObject */
    private Redis $redis;
    private int $connects = 0;
    private ?string $lastError = null;
    /** @var array<string, true> the fake server's script cache, by SHA1 (see serve()) */
    private array $serverScripts = [];
    /** @var array<string, array<int, mixed>|string> the fake server's replies, by script name */
    private array $serverReplies = [];
    /** @var list<string> */
    private array $sent = [];
    /** @var list<list<string>> */
    private array $arguments = [];
    /** What exec() does instead of answering: throw this, or return false; null = answer. */
    private RedisException|false|null $execError = null;

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

    /** @dataProvider repliesOfAServerThatCannotServeNow */
    public function testAServerThatCannotServeNowIsAnOutageAndTheNextCallReconnects(string $errorReply): void
    {
        $this->redis->method('evalSha')->willReturnOnConsecutiveCalls(
            self::returnCallback(function () use ($errorReply) {
                $this->lastError = $errorReply;

                return false;
            }),
            ['OK', 1],
        );
        $this->assertAnOutageThenAReconnect($errorReply);
    }

    /** @return array<string, array{string}> */
    public static function repliesOfAServerThatCannotServeNow(): array
    {
        $replies = [
            'LOADING Redis is loading the dataset in memory',
            'BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.',
            'MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to \'no\'.',
            "READONLY You can't write against a read only replica.",
            'TRYAGAIN Multiple keys request during rehashing of slot',
            'CLUSTERDOWN The cluster is down',
            'NOREPLICAS Not enough good replicas to write.',
            'OOM command not allowed when used memory > \'maxmemory\'.',
            'MISCONF Redis is configured to save RDB snapshots, but it\'s currently unable to persist to disk.',
            'NOAUTH Authentication required.',
            'ERR max number of clients reached',
            // A login-requiring server's answer to a first command of more than ten parts.
            'ERR Protocol error: unauthenticated multibulk length',
        ];

        return array_combine(array_map(static fn (string $reply) => substr($reply, 0, 30), $replies), array_map(
            static fn (string $reply) => [$reply],
            $replies,
        ));
    }

    public function testAConnectionErrorIsAnOutageAndTheNextCallReconnects(): void
    {
        $this->redis->method('evalSha')->willReturnOnConsecutiveCalls(
            self::throwException(new RedisException('read error on connection')),
            ['OK', 1],
        );
        $this->assertAnOutageThenAReconnect('read error on connection');
    }

    /** The first call fails as an outage with `$message`; the next one succeeds over a new connection. */
    private function assertAnOutageThenAReconnect(string $message): void
    {
        $connection = $this->connection();
        try {
            $connection->runScript(new Script('ack', 0, 'return 1'), [], []);
            self::fail('expected an outage');
        } catch (Unavailable $unavailable) {
            self::assertSame($message, $unavailable->getMessage());
        }

        self::assertSame(['OK', 1], $connection->runScript(new Script('ack', 0, 'return 1'), [], []));
        self::assertSame(2, $this->connects, 'a new connection (which logs in again)');
    }

    public function testScriptsGoOneByOneUntilTheServerIsKnownToHoldThemThenInOnePipeline(): void
    {
        $this->serve(['ack' => ['OK', 1], 'reserve' => ['EMPTY', -1]], ['reserve']);
        $connection = $this->connection();

        self::assertSame([['OK', 1], ['EMPTY', -1]], $connection->runScripts($this->ackThenReserve()));
        self::assertSame(
            ['evalSha ack', 'eval ack', 'evalSha reserve'],
            $this->sent,
            'the ack the server has no script for never runs after the reserve',
        );

        $this->sent = [];
        self::assertSame([['OK', 1], ['EMPTY', -1]], $connection->runScripts($this->ackThenReserve()));
        self::assertSame(['pipelined evalSha ack', 'pipelined evalSha reserve', 'exec'], $this->sent);
        self::assertSame([['k1', 'a1'], ['k2', 'a2', 'a3']], $this->arguments);
    }

    public function testAPipelinedCallTheServerHasNoScriptForRunsAgainAloneFromItsSource(): void
    {
        $this->serve(['ack' => ['OK', 1], 'reserve' => ['EMPTY', -1]], ['ack', 'reserve']);
        $connection = $this->connection();
        $connection->runScripts($this->ackThenReserve());
        $this->serverScripts = [];
        $this->sent = [];

        self::assertSame([['OK', 1], ['EMPTY', -1]], $connection->runScripts($this->ackThenReserve()));
        self::assertSame([
            'pipelined evalSha ack', 'pipelined evalSha reserve', 'exec',
            'evalSha ack', 'eval ack', 'evalSha reserve', 'eval reserve',
        ], $this->sent, 'after SCRIPT FLUSH: each runs again alone, in order');

        $this->sent = [];
        $connection->runScripts($this->ackThenReserve());
        self::assertNotContains('exec', $this->sent, 'no pipeline until both are known again');
    }

    public function testAnyOtherErrorReplyInAPipelineIsRaisedByTheCallRunAlone(): void
    {
        $this->serve(['ack' => ['OK', 1], 'reserve' => ['EMPTY', -1]], ['ack', 'reserve']);
        $connection = $this->connection();
        $connection->runScripts($this->ackThenReserve());
        $this->serverReplies['reserve'] = 'ERR user_script:1: boom';

        try {
            $connection->runScripts($this->ackThenReserve());
            self::fail('expected ScriptFailed');
        } catch (ScriptFailed $failed) {
            self::assertSame('reserve: ERR user_script:1: boom', $failed->getMessage());
        }
        self::assertContains('exec', $this->sent);
        self::assertSame('evalSha reserve', $this->sent[array_key_last($this->sent)], 'run again alone');
    }

    public function testAConnectionErrorDuringAPipelineIsAnOutageAndTheNextCallsReconnectAndGoOneByOne(): void
    {
        $this->serve(['ack' => ['OK', 1], 'reserve' => ['EMPTY', -1]], ['ack', 'reserve']);
        $this->execError = new RedisException('read error on connection');
        $connection = $this->connection();
        $connection->runScripts($this->ackThenReserve());
        try {
            $connection->runScripts($this->ackThenReserve());
            self::fail('expected an outage');
        } catch (Unavailable $unavailable) {
            self::assertSame('read error on connection', $unavailable->getMessage());
        }
        $this->sent = [];

        self::assertSame([['OK', 1], ['EMPTY', -1]], $connection->runScripts($this->ackThenReserve()));
        self::assertSame(2, $this->connects);
        self::assertSame(['evalSha ack', 'evalSha reserve'], $this->sent, 'the new server may be another one');
    }

    public function testAPipelineAnsweredWithoutAReplyPerCallIsAnOutage(): void
    {
        $this->serve(['ack' => ['OK', 1], 'reserve' => ['EMPTY', -1]], ['ack', 'reserve']);
        $this->execError = false;
        $connection = $this->connection();
        $connection->runScripts($this->ackThenReserve());

        $this->expectException(Unavailable::class);
        $connection->runScripts($this->ackThenReserve());
    }

    public function testOneServerPipelinesItsScripts(): void
    {
        $this->redis->method('connect')->willReturn(true);
        $this->serve(['ack' => ['OK', 1], 'reserve' => ['EMPTY', -1]], ['ack', 'reserve']);
        $connection = new StandaloneConnection(RedisEndpoint::fromUrl('redis://h'), 1.0, 5.0, fn () => $this->redis);
        $connection->runScripts($this->ackThenReserve());
        $this->sent = [];

        self::assertSame([['OK', 1], ['EMPTY', -1]], $connection->runScripts($this->ackThenReserve()));
        self::assertSame(['pipelined evalSha ack', 'pipelined evalSha reserve', 'exec'], $this->sent);
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

    public function testRedisUrls(): void
    {
        $plain = RedisEndpoint::fromUrl('redis://127.0.0.1:6390');
        self::assertSame(
            ['127.0.0.1', 6390, null, null, null],
            [$plain->host, $plain->port, $plain->credentials(), $plain->tls, $plain->context()],
        );

        $acl = RedisEndpoint::fromUrl('rediss://worker:s%3Acret@[::1]:7000/3');
        self::assertSame('::1', $acl->host);
        self::assertSame(['worker', 's:cret'], $acl->credentials());
        self::assertSame(3, $acl->database);
        self::assertSame('tls://::1', $acl->address());
        self::assertSame(
            ['stream' => ['verify_peer' => true, 'verify_peer_name' => true]],
            $acl->context(),
            'OpenSSL\'s authorities, the name verified',
        );
        $mutual = $acl->withTls(new TlsSettings('/etc/ca.pem', '/etc/me.pem', '/etc/me.key'));
        self::assertSame(
            ['stream' => [
                'verify_peer' => true,
                'verify_peer_name' => true,
                'cafile' => '/etc/ca.pem',
                'local_cert' => '/etc/me.pem',
                'local_pk' => '/etc/me.key',
            ]],
            $mutual->context(),
        );
        $moved = $mutual->at('10.0.0.2', 7001);
        self::assertSame(
            ['10.0.0.2', 7001, ['worker', 's:cret'], 3, $mutual->context()],
            [$moved->host, $moved->port, $moved->credentials(), $moved->database, $moved->context()],
            'another node keeps the login, database and TLS',
        );

        self::assertSame('only-password', RedisEndpoint::fromUrl('redis://:only-password@h')->credentials());
        self::assertSame(6379, RedisEndpoint::fromUrl('node-1')->port, 'a bare host (cluster seed)');
        $this->expectException(\InvalidArgumentException::class);
        $plain->withTls(new TlsSettings('/etc/ca.pem'));
    }

    /** @return list<ScriptCall> */
    private function ackThenReserve(): array
    {
        return [
            new ScriptCall(new Script('ack', 1, self::ACK_SOURCE), ['k1'], ['a1']),
            new ScriptCall(new Script('reserve', 1, self::RESERVE_SOURCE), ['k2'], ['a2', 'a3']),
        ];
    }

    /**
     * Makes the mocked client a server that holds the named scripts in its cache (EVAL adds one)
     * and answers each script with its reply (a string is an error reply; both can be changed
     * later through the properties). What reaches it is
     * logged in $sent, the arguments of each pipelined call in $arguments.
     *
     * @param array<string, array<int, mixed>|string> $replies by script name
     * @param list<string> $cached
     */
    private function serve(array $replies, array $cached): void
    {
        $names = [sha1(self::ACK_SOURCE) => 'ack', sha1(self::RESERVE_SOURCE) => 'reserve'];
        $this->serverScripts = array_fill_keys(array_keys(array_intersect($names, $cached)), true);
        $this->serverReplies = $replies;
        $queued = null;
        $answer = function (string $how, string $sha, array $arguments) use ($names, &$queued): mixed {
            $this->sent[] = ($queued === null ? '' : 'pipelined ') . "{$how} {$names[$sha]}";
            if ($how === 'evalSha' && !isset($this->serverScripts[$sha])) {
                $reply = 'NOSCRIPT No matching script. Please use EVAL.';
            } else {
                $this->serverScripts[$sha] = true;
                $reply = $this->serverReplies[$names[$sha]];
            }
            if ($queued !== null) {
                $this->arguments[] = $arguments;
                $queued[] = $reply;

                return $this->redis;
            }
            if (is_string($reply)) {
                $this->lastError = $reply;

                return false;
            }

            return $reply;
        };
        $this->redis->method('evalSha')->willReturnCallback(
            fn (string $sha, array $arguments) => $answer('evalSha', $sha, $arguments),
        );
        $this->redis->method('eval')->willReturnCallback(
            fn (string $source, array $arguments) => $answer('eval', sha1($source), $arguments),
        );
        $this->redis->method('multi')->willReturnCallback(function (int $mode) use (&$queued) {
            self::assertSame(Redis::PIPELINE, $mode);
            $queued = [];

            return $this->redis;
        });
        $this->redis->method('exec')->willReturnCallback(function () use (&$queued) {
            $this->sent[] = 'exec';
            $replies = $queued;
            $queued = null;
            if ($this->execError instanceof RedisException) {
                throw $this->execError;
            }
            if ($this->execError === false) {
                return false;
            }
            foreach ($replies as $i => $reply) {
                if (is_string($reply)) {
                    $this->lastError = $reply;
                    $replies[$i] = false;
                }
            }

            return $replies;
        });
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

            protected function blockingPop(Redis|RedisCluster $client, array $wakeKeys, float $seconds): ?string
            {
                $client->rawCommand('BLPOP', ...$wakeKeys);

                return null;
            }
        };
    }
}
