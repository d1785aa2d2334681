<?php

declare(strict_types=1);

namespace Jobgate\Worker;

use JsonException;

/**
 * JSON text as jobgate stores it: slashes and Unicode unescaped.
 */
final class Json
{
    private const FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION;

    /**
     * @throws JsonException when the value cannot be represented (INF, NAN, a resource,
     *     recursion, a string that is not UTF-8): a handler's data is stored as it is, or not at all
     */
    public static function encode(mixed $value): string
    {
        return json_encode($value, self::FLAGS | JSON_THROW_ON_ERROR);
    }

    /**
     * Never fails, for log lines: values that cannot be represented are replaced by null, and
     * invalid UTF-8 by U+FFFD.
     */
    public static function encodeLenient(mixed $value): string
    {
        $json = json_encode($value, self::FLAGS | JSON_INVALID_UTF8_SUBSTITUTE | JSON_PARTIAL_OUTPUT_ON_ERROR);

        return $json === false ? 'null' : $json;
    }

    /** @throws JsonException */
    public static function decode(string $json): mixed
    {
        return json_decode($json, true, 512, JSON_THROW_ON_ERROR);
    }

    /**
     * The first integer of JSON text that a double cannot hold exactly (past 2^53, such as
     * 9007199254740993), or null. The gateway reads JSON numbers as doubles: such an integer
     * would show rounded in the job's status, so it is refused as the gateway refuses it.
     */
    public static function inexactInteger(string $json): ?string
    {
        if (preg_match('/\d{16}/', $json) !== 1) {
            return null;
        }
        // Strings are matched whole so that digits inside them are skipped; an integer literal
        // is a run of 16 or more digits not inside a fraction or an exponent.
        preg_match_all('/"(?:[^"\\\\]|\\\\.)*"|(?<![\d.eE+\-])-?\d{16,}(?![\d.eE])/', $json, $tokens);
        foreach ($tokens[0] as $token) {
            if ($token[0] === '"') {
                continue;
            }
            $digits = ltrim($token, '-');
            // '%.0f' prints a double's exact value: the digits again only if nothing was lost.
            if (sprintf('%.0f', (float) $digits) !== $digits) {
                return $token;
            }
        }

        return null;
    }

    /** Why a result or progress ($what) holding $integer (from inexactInteger()) is refused. */
    public static function inexactIntegerMessage(string $what, string $integer): string
    {
        $shown = sprintf('%.0f', (float) $integer);

        return "the {$what} has the integer {$integer}, past 2^53, which a JSON number cannot carry exactly"
            . " (the job's status would show {$shown}); return it as a string";
    }

    /**
     * Valid UTF-8 (invalid bytes become U+FFFD) of at most $maxBytes bytes, cut on a character
     * boundary. Needs no mbstring.
     */
    public static function utf8Truncate(string $text, int $maxBytes): string
    {
        if (!preg_match('//u', $text)) {
            $text = (string) json_decode(self::encodeLenient($text));
        }
        if (strlen($text) <= $maxBytes) {
            return $text;
        }
        $cut = substr($text, 0, $maxBytes);
        // A cut inside a multi-byte character leaves at most 3 stray bytes at the end.
        for ($i = 0; $i < 3 && !preg_match('//u', $cut); $i++) {
            $cut = substr($cut, 0, -1);
        }

        return $cut;
    }
}
