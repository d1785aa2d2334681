<?php

declare(strict_types=1);

namespace Jobgate\Worker;

use RuntimeException;

/**
 * The worker cannot start with this configuration (handlers file, Lua directory, missing
 * extension): exit code 78.
 */
final class ConfigError extends RuntimeException
{
}
