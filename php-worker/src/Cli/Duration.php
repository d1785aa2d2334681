<?php

declare(strict_types=1);

namespace Jobgate\Worker\Cli;

/**
 * Durations written as the gateway reads them: `500ms`, `30s`, `15m`, `24h`, `7d` (units in any
 * case), or a bare number of milliseconds.
 */
final class Duration
{
    private const UNIT_MS = ['ms' => 1, 's' => 1000, 'm' => 60_000, 'h' => 3_600_000, 'd' => 86_400_000];

    /** Milliseconds, or null when the text is not a duration. */
    public static function parseMs(string $text): ?int
    {
        if (!preg_match('/^(\d+)\s*(ms|s|m|h|d)?$/i', trim($text), $match)) {
            return null;
        }
        // Past 15 digits every duration is longer than any option allows (and may overflow).
        if (strlen(ltrim($match[1], '0')) > 15) {
            return null;
        }

        $unit = strtolower(($match[2] ?? '') === '' ? 'ms' : $match[2]);
        $ms = (int) $match[1] * self::UNIT_MS[$unit];

        // An integer product too large for an int becomes a float.
        return is_int($ms) ? $ms : null;
    }
}
