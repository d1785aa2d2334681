<?php

declare(strict_types=1);

namespace Jobgate\Worker;

use RuntimeException;

/**
 * Thrown by JobContext::progress() when the server refuses the progress for its size (over
 * 64 KiB of JSON, or, over HTTP, over the gateway's body limit), or when it holds an integer a
 * double cannot hold exactly (past 2^53). Nothing was recorded and the lease was not extended;
 * the handler may go on and report something else.
 */
final class ProgressRejected extends RuntimeException
{
}
