<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

/**
 * One run of a script: the script with its KEYS and ARGV.
 */
final class ScriptCall
{
    /**
     * @param list<string> $keys
     * @param list<string> $args
     */
    public function __construct(
        public readonly Script $script,
        public readonly array $keys,
        public readonly array $args,
    ) {
    }
}
