<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests;

use Jobgate\Worker\ConfigError;
use Jobgate\Worker\Examples\EchoHandler;
use Jobgate\Worker\Examples\FailHandler;
use Jobgate\Worker\Examples\SleepHandler;
use Jobgate\Worker\Handler;
use Jobgate\Worker\HandlerMap;
use Jobgate\Worker\Tests\Fakes\AbstractHandler;
use Jobgate\Worker\Tests\Fakes\NeedsArguments;
use PHPUnit\Framework\TestCase;
use stdClass;
use UnexpectedValueException;

final class HandlerMapTest extends TestCase
{
    private const FIXTURES = __DIR__ . '/fixtures';

    public function testAFileMapsTypesToInstancesClassNamesAndFactories(): void
    {
        $map = HandlerMap::fromFile(self::FIXTURES . '/valid-handlers.php');

        self::assertSame(['echo', 'sleep', 'fail', '404'], $map->types());
        self::assertInstanceOf(EchoHandler::class, $map->get('echo'));
        self::assertInstanceOf(SleepHandler::class, $map->get('sleep'));
        self::assertInstanceOf(FailHandler::class, $map->get('fail'));
        self::assertTrue($map->has('404'), 'numeric types work as strings');
        self::assertSame($map->get('echo'), $map->get('echo'), 'one instance per type');
    }

    public function testOnlyListedTypesExist(): void
    {
        $map = HandlerMap::fromArray(['echo' => EchoHandler::class]);

        self::assertFalse($map->has(EchoHandler::class), 'a class name in queue data is just an unknown type');
        self::assertFalse($map->has('Echo'));
    }

    public function testAFactoryRunsOnFirstUseOnly(): void
    {
        $calls = 0;
        $map = HandlerMap::fromArray(['lazy' => function () use (&$calls): Handler {
            $calls++;

            return new EchoHandler();
        }]);

        self::assertSame(0, $calls);
        $map->get('lazy');
        $map->get('lazy');
        self::assertSame(1, $calls);
    }

    public function testAFactoryThatReturnsSomethingElseFailsWhenUsed(): void
    {
        $map = HandlerMap::fromArray(['odd' => fn () => new stdClass()]);

        $this->expectException(UnexpectedValueException::class);
        $this->expectExceptionMessage('returned stdClass');
        $map->get('odd');
    }

    public function testAMissingFileIsAConfigError(): void
    {
        $this->expectException(ConfigError::class);
        $this->expectExceptionMessage('handlers file not found or unreadable: /nope.php');
        HandlerMap::fromFile('/nope.php');
    }

    public function testAFileThatDoesNotReturnAnArrayIsAConfigError(): void
    {
        $this->expectException(ConfigError::class);
        $this->expectExceptionMessage('must return an array of job type => Handler, got string');
        HandlerMap::fromFile(self::FIXTURES . '/not-an-array.php');
    }

    public function testAFileThatThrowsIsAConfigError(): void
    {
        $this->expectException(ConfigError::class);
        $this->expectExceptionMessage('failed to load: database is down');
        HandlerMap::fromFile(self::FIXTURES . '/throws.php');
    }

    public function testAnEntryThatIsNotAHandlerIsAConfigError(): void
    {
        $this->expectException(ConfigError::class);
        $this->expectExceptionMessage('the entry for job type "echo" names class strtoupper, which does not exist');
        HandlerMap::fromFile(self::FIXTURES . '/bad-entry.php');
    }

    /** @dataProvider badEntries */
    public function testBadEntries(mixed $entry, string $expected): void
    {
        $this->expectException(ConfigError::class);
        $this->expectExceptionMessage($expected);
        HandlerMap::fromArray(['t' => $entry]);
    }

    /** @return array<string, array{mixed, string}> */
    public static function badEntries(): array
    {
        return [
            'a class that is not a Handler' => [stdClass::class, 'does not implement Jobgate\Worker\Handler'],
            'an object that is not a Handler' => [new stdClass(), 'got stdClass'],
            'an interface' => [Handler::class, 'names interface Jobgate\Worker\Handler: name a class that implements'],
            'an abstract class' => [AbstractHandler::class, 'names an abstract class'],
            'a constructor with arguments' => [NeedsArguments::class, 'constructor needs arguments'],
            'a number' => [42, 'got int'],
        ];
    }
}
