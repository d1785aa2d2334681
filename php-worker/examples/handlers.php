<?php

/**
 * Demo handlers for the README and the quick start:
 *
 *   php php-worker/bin/jobgate-worker --queue=emails --handlers=php-worker/examples/handlers.php
 *
 * A handlers file returns job type => a Handler, its class name, or a Closure returning one.
 * Only the types listed here ever run.
 */

declare(strict_types=1);

use Jobgate\Worker\Examples\CrashHandler;
use Jobgate\Worker\Examples\EchoHandler;
use Jobgate\Worker\Examples\FailHandler;
use Jobgate\Worker\Examples\FlakyHandler;
use Jobgate\Worker\Examples\SleepHandler;

return [
    'echo' => EchoHandler::class,
    'sleep' => new SleepHandler(),
    'flaky' => FlakyHandler::class,
    'fail' => FailHandler::class,
    'crash' => static fn () => new CrashHandler(),
];
