<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Redis;

use LogicException;

/**
 * A script answered with an error reply or a reply outside its contract: a bug, not an outage.
 */
final class ScriptFailed extends LogicException
{
}
