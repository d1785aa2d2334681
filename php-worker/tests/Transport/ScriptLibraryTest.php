<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Transport;

use Jobgate\Worker\ConfigError;
use Jobgate\Worker\Transport\Redis\ScriptLibrary;
use PHPUnit\Framework\TestCase;

/**
 * The worker's scripts as read from a lua/ directory: every one it needs, with each
 * `-- @include <piece>` line replaced by lua/include/<piece>.lua.
 */
final class ScriptLibraryTest extends TestCase
{
    private const SHARED = __DIR__ . '/../../../lua';

    private string $directory;

    protected function setUp(): void
    {
        $this->directory = sys_get_temp_dir() . '/jobgate-lua-' . bin2hex(random_bytes(4));
        mkdir("{$this->directory}/include", 0777, true);
        foreach (ScriptLibrary::REQUIRED as $name => $keys) {
            file_put_contents("{$this->directory}/{$name}-{$keys}.lua", "return '{$name}'\n");
        }
        file_put_contents("{$this->directory}/include/two.lua", "--[[ two ]]\nlocal function two() return 2 end\n");
    }

    protected function tearDown(): void
    {
        foreach (glob("{$this->directory}/include/*") ?: [] as $file) {
            unlink($file);
        }
        foreach (glob("{$this->directory}/*.lua") ?: [] as $file) {
            unlink($file);
        }
        rmdir("{$this->directory}/include");
        rmdir($this->directory);
    }

    public function testTheLibraryNeedsEveryWorkerScript(): void
    {
        unlink("{$this->directory}/ack-4.lua");

        $this->expectException(ConfigError::class);
        $this->expectExceptionMessage('ack-4.lua');
        ScriptLibrary::fromDirectory($this->directory);
    }

    public function testAnIncludeLineBecomesThePiece(): void
    {
        file_put_contents("{$this->directory}/ack-4.lua", "-- head\n-- @include two\nreturn two()\n");

        $ack = ScriptLibrary::fromDirectory($this->directory)->get('ack');

        $text = "-- head\n--[[ two ]]\nlocal function two() return 2 end\nreturn two()\n";
        self::assertSame($text, $ack->source);
        self::assertSame(sha1($text), $ack->sha1);
        self::assertSame(4, $ack->numberOfKeys);
    }

    /** @return array<string, array{string, string}> */
    public static function badIncludes(): array
    {
        return [
            'missing piece' => ["-- @include three\n", 'no include three'],
            'bad name' => ["-- @include ../two\n", "bad include name '../two'"],
            'trailing space' => ["-- @include two \n", "bad include name 'two '"],
            'twice' => ["-- @include two\n-- @include two\n", "'two' is included twice"],
        ];
    }

    /** @dataProvider badIncludes */
    public function testABadIncludeIsAConfigError(string $lines, string $message): void
    {
        file_put_contents("{$this->directory}/retry-7.lua", $lines . "return 1\n");

        $this->expectException(ConfigError::class);
        $this->expectExceptionMessage($message);
        ScriptLibrary::fromDirectory($this->directory);
    }

    public function testAPieceDoesNotIncludeAnother(): void
    {
        file_put_contents("{$this->directory}/include/one.lua", "-- @include two\n");
        file_put_contents("{$this->directory}/fail-5.lua", "-- @include one\nreturn 1\n");

        $this->expectException(ConfigError::class);
        $this->expectExceptionMessage('include one includes another');
        ScriptLibrary::fromDirectory($this->directory);
    }

    public function testTheSharedScriptsLoadWithTheirPieces(): void
    {
        $library = ScriptLibrary::fromDirectory(self::SHARED);

        foreach (ScriptLibrary::REQUIRED as $name => $keys) {
            $script = $library->get($name);
            self::assertSame($keys, $script->numberOfKeys);
            self::assertStringNotContainsString('-- @include', $script->source, $name);
        }
        self::assertStringContainsString('local function wake(wake_key, n)', $library->get('reserve')->source);
        self::assertStringContainsString(
            'local function lease_lost(job_key, token, state)',
            $library->get('ack')->source,
        );
    }
}
