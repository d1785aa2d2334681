<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use LogicException;

/**
 * A MOVED reply: the key's slot is served by another node of a Redis Cluster. The cluster
 * connection follows it; to a connection of one server it is a misconfiguration (a cluster node
 * named as a single server), not an outage.
 */
final class SlotMoved extends LogicException
{
    public function __construct(string $message, public readonly int $slot, public readonly string $address)
    {
        parent::__construct($message);
    }

    /** The MOVED error reply's slot and address, or null for any other error. */
    public static function fromReply(string $error, string $context): ?self
    {
        if (preg_match('/^MOVED (\d+) (\S+:\d+)$/', $error, $moved) !== 1) {
            return null;
        }

        return new self("{$context}: {$error}", (int) $moved[1], $moved[2]);
    }
}
