<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

/**
 * One Lua script of the protocol, as loaded from lua/<name>-<number of keys>.lua.
 */
final class Script
{
    public readonly string $sha1;

    public function __construct(
        public readonly string $name,
        public readonly int $numberOfKeys,
        public readonly string $source,
    ) {
        $this->sha1 = sha1($source);
    }
}
