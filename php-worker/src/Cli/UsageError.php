<?php

declare(strict_types=1);

namespace Jobgate\Worker\Cli;

use InvalidArgumentException;

/**
 * A bad or unknown command-line option (or environment value): exit code 64.
 */
final class UsageError extends InvalidArgumentException
{
}
