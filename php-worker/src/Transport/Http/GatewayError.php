<?php

declare(strict_types=1);

namespace Jobgate\Worker\Transport\Http;

use LogicException;

/**
 * The gateway refused a worker call for a reason retrying will not fix (a 4xx other than a lost
 * lease: bad request, bad API key, wrong URL): a bug or a misconfiguration.
 */
final class GatewayError extends LogicException
{
}
