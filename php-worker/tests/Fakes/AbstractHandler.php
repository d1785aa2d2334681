<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Fakes;

use Jobgate\Worker\Handler;

/** A Handler the map cannot make: abstract. */
abstract class AbstractHandler implements Handler
{
}
