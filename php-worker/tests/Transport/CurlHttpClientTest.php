<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Transport;

use Jobgate\Worker\Transport\Http\CurlHttpClient;
use PHPUnit\Framework\TestCase;

final class CurlHttpClientTest extends TestCase
{
    public function testTheFieldsAreTheFinalAnswersWithLowerCaseNames(): void
    {
        $head = "HTTP/1.1 100 Continue\r\n\r\n"
            . "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: application/problem+json\r\n"
            . "X-Odd:  spaced : value \r\n\r\n";

        self::assertSame(
            ['retry-after' => '5', 'content-type' => 'application/problem+json', 'x-odd' => 'spaced : value'],
            CurlHttpClient::parseHeaders($head),
        );
    }

    public function testAnInterimAnswersFieldsAreNotTheFinalAnswers(): void
    {
        $head = "HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";

        self::assertSame([], CurlHttpClient::parseHeaders($head));
    }
}
