<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport;

/** Sizes the protocol's scripts refuse beyond (lua/ack-4.lua, lua/heartbeat-2.lua). */
final class ProtocolLimits
{
    /** The longest result an ack takes, in bytes of JSON text. */
    public const RESULT_MAX_BYTES = 1048576;

    private function __construct()
    {
    }
}
