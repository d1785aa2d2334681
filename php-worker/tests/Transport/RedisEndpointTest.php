<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Transport;

use InvalidArgumentException;
use Jobgate\Worker\Transport\Redis\RedisEndpoint;
use PHPUnit\Framework\TestCase;
use Throwable;

/**
 * Redis URLs read as the gateway reads them, and quoted without their login.
 */
final class RedisEndpointTest extends TestCase
{
    /**
     * @dataProvider logins
     * @param string|list<string>|null $credentials
     */
    public function testTheLoginIsReadAfterAColonAndDecoded(string $url, string|array|null $credentials): void
    {
        self::assertSame($credentials, RedisEndpoint::fromUrl($url)->credentials());
    }

    /** @return array<string, array{string, string|list<string>|null}> */
    public static function logins(): array
    {
        return [
            'none' => ['redis://h:6379', null],
            'an empty one' => ['redis://:@h', null],
            'an empty user' => ['redis://@h', null],
            'a password' => ['redis://:pw@h', 'pw'],
            'a user and a password' => ['rediss://u:pw@h/2', ['u', 'pw']],
            'escapes' => ['redis://u%41:a%2Fb%25c%3Fd@h', ['uA', 'a/b%c?d']],
            'a character in UTF-8' => ['redis://:caf%C3%A9@h', 'café'],
            'an @ of the password\'s own' => ['redis://:p@ss@h', 'p@ss'],
        ];
    }

    public function testTheDatabaseIsThePath(): void
    {
        self::assertSame(2, RedisEndpoint::fromUrl('redis://h:6379/2')->database);
        self::assertSame(0, RedisEndpoint::fromUrl('redis://h:6379/')->database);
        self::assertSame(0, RedisEndpoint::fromUrl('h:6379')->database, 'a bare host:port (a seed)');
    }

    /** @dataProvider refused */
    public function testRefusedUrlsAreQuotedWithoutTheirSecrets(string $url, string $expected, string $secret): void
    {
        try {
            RedisEndpoint::fromUrl($url);
        } catch (Throwable $thrown) {
            self::assertSame(InvalidArgumentException::class, $thrown::class);
            self::assertStringContainsString($expected, $thrown->getMessage());
            self::assertStringNotContainsString($secret, $thrown->getMessage());

            return;
        }
        self::fail("{$url} was taken");
    }

    /** @return array<string, array{string, string, string}> */
    public static function refused(): array
    {
        return [
            'not redis' => [
                'http://u:hunter2@h',
                'not a Redis URL, redis[s]://[[user]:password@]host[:port][/db] (got "http://***@h")',
                'hunter2',
            ],
            'a query string' => ['redis://h/1?db=3', 'takes no query string or fragment', 'db=3'],
            'a password in the query' => [
                'redis://h?password=hunter2',
                'name the database in the path, as in redis://host:6379/2',
                'hunter2',
            ],
            'an empty query' => ['redis://:hunter2@h/?', '(got "redis://***@h/?***")', 'hunter2'],
            'a fragment' => ['redis://:hunter2@h#x', 'takes no query string or fragment', 'hunter2'],
            'a raw ? in the password' => ['redis://:hun?ter2@h', 'write a ? or # in the password as %3F', 'ter2'],
            'no colon' => [
                'redis://hunter2@h',
                'write the password after a colon: redis://:password@host, or redis://user:password@host',
                'hunter2',
            ],
            'no password after the colon' => ['redis://hunter2:@h', 'write the password after a colon', 'hunter2'],
            'a % and no hex' => ['redis://:100%zz@h', 'percent-encode a % in the password as %25', '100%'],
            'a % and one hex digit' => ['redis://:hunter2%4@h', 'percent-encode a % in the password as %25', 'hunter2'],
            'a % in the user' => ['redis://us%er:hunter2@h', 'percent-encode a %', 'hunter2'],
            'an escape of no UTF-8' => ['redis://:hunter2%FF@h', 'decode to no UTF-8 text', 'hunter2'],
            'half a character in the user' => ['redis://u%C3:hunter2@h', 'decode to no UTF-8 text', 'hunter2'],
            'port 0' => ['redis://:hunter2@h:0', 'must name a port from 1 to 65535, or none for 6379', 'hunter2'],
            'port 00' => ['redis://h:00/1', 'must name a port from 1 to 65535', 'hunter2'],
            'a database that is no number' => [
                'redis://:hunter2@db.example:6379/x',
                'the database of a Redis URL must be a number, as in /2 (got "redis://***@db.example:6379/x")',
                'hunter2',
            ],
        ];
    }

    /** @dataProvider redactions */
    public function testRedactHidesTheLoginAndTheQuery(string $text, string $quoted): void
    {
        self::assertSame($quoted, RedisEndpoint::redact($text));
    }

    /** @return array<string, array{string, string}> */
    public static function redactions(): array
    {
        return [
            'no login' => ['redis://db.example:6379/2', 'redis://db.example:6379/2'],
            'a login' => ['redis://user:password@db.example:6379/x', 'redis://***@db.example:6379/x'],
            'a seed with a login' => ['user:password@n1:7000', '***@n1:7000'],
            'an @ in the password' => ['rediss://:p@ss@h', 'rediss://***@h'],
            'a query' => ['redis://h/0?password=x#y', 'redis://h/0?***'],
            'a fragment' => ['redis://h#x', 'redis://h#***'],
        ];
    }
}
