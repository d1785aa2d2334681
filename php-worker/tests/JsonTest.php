<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests;

use Jobgate\Worker\Json;
use PHPUnit\Framework\TestCase;

/** Integers of JSON text that a double, and so the gateway, cannot hold exactly. */
final class JsonTest extends TestCase
{
    /** @return array<string, array{string, ?string}> */
    public static function texts(): array
    {
        return [
            'past 2^53, odd' => ['[9007199254740993]', '9007199254740993'],
            'negative' => ['{"a":-9007199254740993}', '-9007199254740993'],
            'PHP_INT_MAX' => ['[1,9223372036854775807]', '9223372036854775807'],
            'the first of two' => ['[12345678901234567,9007199254740993]', '12345678901234567'],
            '2^53 itself' => ['[9007199254740992]', null],
            'even past 2^53, exact' => ['[9007199254740994]', null],
            'fifteen digits' => ['[123456789012345]', null],
            'in a string' => ['["9007199254740993"]', null],
            'in a string after an escaped quote' => ['["a\\"9007199254740993"]', null],
            'a key' => ['{"9007199254740993":1}', null],
            'a fraction' => ['[0.12345678901234567]', null],
            'a float' => ['[9007199254740993.0]', null],
            'an exponent' => ['[1.0e+12345678901234567]', null],
            'a negative exponent' => ['[1e-12345678901234567]', null],
        ];
    }

    /** @dataProvider texts */
    public function testInexactInteger(string $json, ?string $inexact): void
    {
        self::assertSame($inexact, Json::inexactInteger($json));
    }
}
