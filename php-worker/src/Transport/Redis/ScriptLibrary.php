<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use Jobgate\Worker\ConfigError;

/**
 * The protocol's Lua scripts a worker runs, read unchanged from the shared lua/ directory.
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
            $scripts[$name] = new Script($name, $numberOfKeys, $source);
        }

        return new self($scripts);
    }

    public function get(string $name): Script
    {
        return $this->scripts[$name] ?? throw new \LogicException("no script {$name}");
    }
}
