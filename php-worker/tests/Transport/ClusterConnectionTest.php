<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Transport;

use Jobgate\Worker\Transport\Redis\ClusterConnection;
use Jobgate\Worker\Transport\Redis\RedisEndpoint;
use Jobgate\Worker\Transport\Redis\Script;
use Jobgate\Worker\Transport\Redis\ScriptCall;
use Jobgate\Worker\Transport\Redis\ScriptFailed;
use Jobgate\Worker\Transport\Redis\SlotMoved;
use Jobgate\Worker\Transport\Redis\StandaloneConnection;
use Jobgate\Worker\Transport\Unavailable;
use PHPUnit\Framework\TestCase;
use Redis;
use RedisException;

/**
 * The worker's own cluster routing, on phpredis doubles: one per connection, each answering as
 * the node it was connected to.
 */
final class ClusterConnectionTest extends TestCase
{
    /** @var array<string, list<array{int, int, string}>> what CLUSTER SLOTS answers, by node */
    private array $slots = [];
    /** @var array<string, string> an error reply a node gives scripts, by node */
    private array $errors = [];
    /** @var list<string> nodes that refuse connections */
    private array $down = [];
    /** @var list<string> "node command" in the order sent */
    private array $sent = [];
    /** @var list<string> every connection attempt's host:port, in order */
    private array $connects = [];

    /** @return array<string, array{string, int}> */
    public static function keySlots(): array
    {
        // Each as Redis's CLUSTER KEYSLOT answers.
        return [
            'the spec\'s CRC16 check value' => ['123456789', 12739],
            'a job key: its hash tag' => ['jobgate:{emails}:job:1', 3728],
            'a stats key' => ['jobgate:{q}:stats', 11958],
            'an empty tag: the whole key' => ['foo{}{bar}', 8363],
            'the first closing brace ends the tag' => ['foo{{bar}}zap', 4015],
            'the first tag only' => ['foo{bar}{zap}', 5061],
            'a tag in UTF-8' => ['jobgate:{é}:x', 10180],
            'no key' => ['', 0],
        ];
    }

    /** @dataProvider keySlots */
    public function testTheSlotOfAKeyIsRedisCluster(string $key, int $slot): void
    {
        self::assertSame($slot, ClusterConnection::slotOf($key));
    }

    public function testACallGoesToTheMasterOfItsKeysSlot(): void
    {
        $this->slots['10.0.0.1:7000'] = [[0, 8191, '10.0.0.1:7000'], [8192, 16383, '10.0.0.2:7000']];
        $connection = $this->connection(['10.0.0.1:7000']);

        self::assertSame(['OK', 1], $connection->runScript($this->ack(), ['jobgate:{emails}:job:1'], []));
        self::assertSame(['OK', 1], $connection->runScript($this->ack(), ['jobgate:{q}:stats'], []));
        self::assertSame(
            ['10.0.0.1:7000 CLUSTER SLOTS', '10.0.0.1:7000 evalSha', '10.0.0.2:7000 evalSha'],
            $this->sent,
            'slot 3728 on the first master, 11958 on the second; the slots read once',
        );
    }

    public function testAMovedReplyReroutesItsSlotAndTheCallGoesAgain(): void
    {
        $this->slots['10.0.0.1:7000'] = [[0, 16383, '10.0.0.1:7000']];
        $this->errors['10.0.0.1:7000'] = 'MOVED 11958 10.0.0.9:7000';
        $connection = $this->connection(['10.0.0.1:7000']);

        self::assertSame(['OK', 1], $connection->runScript($this->ack(), ['jobgate:{q}:stats'], []));
        self::assertSame(['OK', 1], $connection->runScript($this->ack(), ['jobgate:{q}:stats'], []));
        self::assertSame(
            [
                '10.0.0.1:7000 CLUSTER SLOTS',
                '10.0.0.1:7000 evalSha',
                '10.0.0.9:7000 evalSha',
                '10.0.0.9:7000 evalSha',
            ],
            $this->sent,
            'a node never mapped before takes the slot, and keeps it',
        );
    }

    public function testASlotThatKeepsMovingIsAnOutage(): void
    {
        $this->slots['10.0.0.1:7000'] = [[0, 16383, '10.0.0.1:7000']];
        $this->errors['10.0.0.1:7000'] = 'MOVED 11958 10.0.0.2:7000';
        $this->errors['10.0.0.2:7000'] = 'MOVED 11958 10.0.0.1:7000';

        $this->expectException(Unavailable::class);
        $this->expectExceptionMessage('slot 11958 keeps moving');
        $this->connection(['10.0.0.1:7000'])->runScript($this->ack(), ['jobgate:{q}:stats'], []);
    }

    public function testASlotBeingMigratedIsAnOutageToWaitOut(): void
    {
        $this->slots['10.0.0.1:7000'] = [[0, 16383, '10.0.0.1:7000']];
        $this->errors['10.0.0.1:7000'] = 'ASK 11958 10.0.0.2:7000';

        $this->expectException(Unavailable::class);
        $this->expectExceptionMessage('ASK 11958');
        $this->connection(['10.0.0.1:7000'])->runScript($this->ack(), ['jobgate:{q}:stats'], []);
    }

    public function testANodeThatDoesNotAnswerMakesTheNextCallReadTheSlotsAgain(): void
    {
        $this->slots['10.0.0.1:7000'] = [[0, 16383, '10.0.0.1:7000']];
        $connection = $this->connection(['10.0.0.1:7000', '10.0.0.2:7000']);
        $connection->runScript($this->ack(), ['jobgate:{q}:stats'], []);
        // Failed over: the first master is gone, its replica now serves every slot.
        $this->down = ['10.0.0.1:7000'];
        $this->slots['10.0.0.2:7000'] = [[0, 16383, '10.0.0.2:7000']];
        try {
            $connection->runScript($this->ack(), ['jobgate:{q}:stats'], []);
            self::fail('the call to the node gone is an outage');
        } catch (Unavailable) {
        }
        $this->sent = [];

        self::assertSame(['OK', 1], $connection->runScript($this->ack(), ['jobgate:{q}:stats'], []));
        self::assertSame(['10.0.0.2:7000 CLUSTER SLOTS', '10.0.0.2:7000 evalSha'], $this->sent);
    }

    public function testANodeBothSeenAndASeedIsAskedForTheSlotsOnce(): void
    {
        $this->slots['10.0.0.1:7000'] = [[0, 16383, '10.0.0.1:7000']];
        $connection = $this->connection(['10.0.0.1:7000', '10.0.0.2:7000']);
        $connection->runScript($this->ack(), ['k'], []);
        $this->down = ['10.0.0.1:7000'];
        $this->slots['10.0.0.2:7000'] = [[0, 16383, '10.0.0.2:7000']];
        try {
            $connection->runScript($this->ack(), ['k'], []);
            self::fail('the call to the node gone is an outage');
        } catch (Unavailable) {
        }
        $this->connects = [];

        $connection->runScript($this->ack(), ['k'], []);
        self::assertSame(
            ['10.0.0.1:7000', '10.0.0.2:7000', '10.0.0.2:7000'],
            $this->connects,
            'the gone master once (seen before, and a seed), the other seed for the slots, then its call',
        );
    }

    public function testNoNodeTellingItsSlotsIsAnOutageNamingEach(): void
    {
        $this->down = ['10.0.0.1:7000'];

        $this->expectException(Unavailable::class);
        $this->expectExceptionMessageMatches('/10\.0\.0\.1:7000: .*refused.*; 10\.0\.0\.2:7000: no slots/');
        $this->connection(['10.0.0.1:7000', '10.0.0.2:7000'])->runScript($this->ack(), ['k'], []);
    }

    public function testCallsGoOneAfterAnotherEachToItsNode(): void
    {
        $this->slots['10.0.0.1:7000'] = [[0, 8191, '10.0.0.1:7000'], [8192, 16383, '10.0.0.2:7000']];
        $calls = [
            new ScriptCall($this->ack(), ['jobgate:{emails}:job:1'], []),
            new ScriptCall($this->ack(), ['jobgate:{q}:stats'], []),
        ];

        self::assertSame([['OK', 1], ['OK', 1]], $this->connection(['10.0.0.1:7000'])->runScripts($calls));
        self::assertSame(['10.0.0.1:7000 evalSha', '10.0.0.2:7000 evalSha'], array_slice($this->sent, 1));
    }

    public function testWakeListsAreWaitedOnEachOnItsNodeSharingTheWait(): void
    {
        $this->slots['10.0.0.1:7000'] = [[0, 8191, '10.0.0.1:7000'], [8192, 16383, '10.0.0.2:7000']];

        self::assertNull($this->connection(['10.0.0.1:7000'])->waitForWake(
            ['jobgate:{emails}:wake', 'jobgate:{q}:wake'],
            1.0,
        ));
        self::assertSame(
            ['10.0.0.1:7000 BLPOP jobgate:{emails}:wake 0.500', '10.0.0.2:7000 BLPOP jobgate:{q}:wake 0.500'],
            array_slice($this->sent, 1),
        );
    }

    public function testToOneServerAMovedReplyIsABugNotAnOutage(): void
    {
        $this->errors['10.0.0.1:7000'] = 'MOVED 11958 10.0.0.9:7000';
        $connection = new StandaloneConnection(
            RedisEndpoint::fromUrl('redis://10.0.0.1:7000'),
            1.0,
            5.0,
            fn () => $this->node(),
        );

        $this->expectException(SlotMoved::class);
        $this->expectExceptionMessage('ack: MOVED 11958 10.0.0.9:7000');
        $connection->runScript($this->ack(), ['jobgate:{q}:stats'], []);
    }

    public function testAnyOtherErrorReplyIsStillABug(): void
    {
        $this->slots['10.0.0.1:7000'] = [[0, 16383, '10.0.0.1:7000']];
        $this->errors['10.0.0.1:7000'] = 'ERR user_script:1: oops';

        $this->expectException(ScriptFailed::class);
        $this->connection(['10.0.0.1:7000'])->runScript($this->ack(), ['k'], []);
    }

    private function ack(): Script
    {
        return new Script('ack', 1, 'return {"OK", 1}');
    }

    /** @param list<string> $seeds host:port */
    private function connection(array $seeds): ClusterConnection
    {
        return new ClusterConnection(
            array_map(static fn (string $seed): RedisEndpoint => RedisEndpoint::fromUrl("redis://{$seed}"), $seeds),
            1.0,
            5.0,
            fn () => $this->node(),
        );
    }

    /** A phpredis double that answers as the node it gets connected to. */
    private function node(): Redis
    {
        $node = $this->createMock(Redis::class);
        $address = '';
        $lastError = null;
        $node->method('connect')->willReturnCallback(function (string $host, int $port) use (&$address) {
            $address = "{$host}:{$port}";
            $this->connects[] = $address;
            if (in_array($address, $this->down, true)) {
                throw new RedisException('Connection refused');
            }

            return true;
        });
        $node->method('getLastError')->willReturnCallback(function () use (&$lastError) {
            return $lastError;
        });
        $node->method('clearLastError')->willReturnCallback(function () use (&$lastError) {
            $lastError = null;

            return true;
        });
        $node->method('rawCommand')->willReturnCallback(function (string ...$command) use (&$address, &$lastError) {
            $this->sent[] = "{$address} " . implode(' ', $command);
            if ($command === ['CLUSTER', 'SLOTS']) {
                if (!isset($this->slots[$address])) {
                    $lastError = 'ERR This instance has cluster support disabled';

                    return false;
                }

                return array_map(static function (array $range): array {
                    [$host, $port] = explode(':', $range[2]);

                    return [$range[0], $range[1], [$host, (int) $port, 'node-id']];
                }, $this->slots[$address]);
            }

            return null;
        });
        $node->method('evalSha')->willReturnCallback(function () use (&$address, &$lastError) {
            if (in_array($address, $this->down, true)) {
                throw new RedisException('socket error on read socket');
            }
            $this->sent[] = "{$address} evalSha";
            if (isset($this->errors[$address])) {
                $lastError = $this->errors[$address];
                // As phpredis does: an error reply not prefixed ERR (MOVED, ASK, …) is raised.
                if (!str_starts_with($lastError, 'ERR ')) {
                    throw new RedisException($lastError);
                }

                return false;
            }

            return ['OK', 1];
        });

        return $node;
    }
}
