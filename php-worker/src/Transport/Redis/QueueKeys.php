<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

/**
 * The Redis keys of one queue: `<prefix>:{<queue>}:<part>`, all in the queue's hash slot.
 */
final class QueueKeys
{
    /** The queue key prefix (ARGV "queue key prefix" of the scripts). */
    public readonly string $stem;

    public function __construct(string $prefix, public readonly string $queue)
    {
        $this->stem = "{$prefix}:{{$queue}}:";
    }

    public function job(string $id): string
    {
        return $this->stem . 'job:' . $id;
    }

    public function active(): string
    {
        return $this->stem . 'active';
    }

    public function scheduled(): string
    {
        return $this->stem . 'scheduled';
    }

    public function dead(): string
    {
        return $this->stem . 'dead';
    }

    public function wake(): string
    {
        return $this->stem . 'wake';
    }

    public function events(): string
    {
        return $this->stem . 'events';
    }

    public function stats(): string
    {
        return $this->stem . 'stats';
    }
}
