<?php

declare(strict_types=1);

namespace Jobgate\Worker\Cli;

/**
 * Durations written as the gateway writes them: `500ms`, `30s`, `15m`, `24h`, `7d`, or a bare
 * number of milliseconds.
 */
final class Duration
{
    private const UNIT_MS = ['ms' => 1, 's' => 1000, 'm' => 60_000, 'h' => 3_600_000, 'd' => 86_400_000];

    /** Milliseconds, or null when the text is not a duration. */
    public static function parseMs(string $text): ?int
    {
        if (!preg_match('/^(\d{1,15})\s*(ms|s|m|h|d)?$/', trim($text), $match)) {
            return null;
        }

        $unit = ($match[2] ?? '') === '' ? 'ms' : $match[2];
        $ms = (int) $match[1] * self::UNIT_MS[$unit];

        // An integer product too large for an int becomes a float.
        return is_int($ms) ? $ms : null;
    }
}
