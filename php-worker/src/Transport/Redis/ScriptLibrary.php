<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use Jobgate\Worker\ConfigError;

/**
 * The protocol's Lua scripts a worker runs, read from the shared lua/ directory. A line
 * `-- @include <piece>` stands for lua/include/<piece>.lua, as the gateway reads it, so both
 * send Redis the same text.
 */
final class ScriptLibrary
{
    /** The scripts a worker needs, by name => number of keys (the number in the file name). */
    public const REQUIRED = ['reserve' => 6, 'ack' => 4, 'fail' => 5, 'retry' => 7, 'heartbeat' => 2];

    /** @param array<string, Script> $scripts */
    private function __construct(private readonly array $scripts)
    {
    }

    /** @throws ConfigError when the directory or a script is missing */
    public static function fromDirectory(string $directory): self
    {
        if (!is_dir($directory)) {
            throw new ConfigError("Lua directory not found: {$directory} (set --lua-dir or JOBGATE_LUA_DIR)");
        }
        $scripts = [];
        foreach (self::REQUIRED as $name => $numberOfKeys) {
            $path = rtrim($directory, '/') . "/{$name}-{$numberOfKeys}.lua";
            $source = is_file($path) ? file_get_contents($path) : false;
            if ($source === false || $source === '') {
                throw new ConfigError("Lua script missing or unreadable: {$path}");
            }
            $scripts[$name] = new Script($name, $numberOfKeys, self::withIncludes($source, $directory, $path));
        }

        return new self($scripts);
    }

    /** @throws ConfigError when an include is missing, named badly, repeated or nested */
    private static function withIncludes(string $source, string $directory, string $path): string
    {
        $seen = [];
        return (string) preg_replace_callback(
            '/^-- @include (.*)$/m',
            static function (array $match) use ($directory, $path, &$seen): string {
                $piece = $match[1];
                if (preg_match('/^[a-z][a-z-]*$/', $piece) !== 1) {
                    throw new ConfigError("{$path}: bad include name '{$piece}'");
                }
                if (isset($seen[$piece])) {
                    throw new ConfigError("{$path}: '{$piece}' is included twice");
                }
                $seen[$piece] = true;
                $file = rtrim($directory, '/') . "/include/{$piece}.lua";
                $text = is_file($file) ? file_get_contents($file) : false;
                if ($text === false) {
                    throw new ConfigError("{$path}: no include {$piece} ({$file})");
                }
                if (preg_match('/^-- @include /m', $text) === 1) {
                    throw new ConfigError("include {$piece} includes another");
                }
                return str_ends_with($text, "\n") ? substr($text, 0, -1) : $text;
            },
            $source,
        );
    }

    public function get(string $name): Script
    {
        return $this->scripts[$name] ?? throw new \LogicException("no script {$name}");
    }
}
