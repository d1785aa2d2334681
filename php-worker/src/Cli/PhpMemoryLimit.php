<?php

declare(strict_types=1);

namespace Jobgate\Worker\Cli;

/** PHP's `memory_limit` setting, as php.ini writes it (`128M`, `1G`, `-1`). */
final class PhpMemoryLimit
{
    private const UNIT_BYTES = ['' => 1, 'K' => 1024, 'M' => 1024 ** 2, 'G' => 1024 ** 3];

    /** Bytes; null when there is no limit (or the setting cannot be read). */
    public static function bytes(string|false $setting): ?int
    {
        if ($setting === false || !preg_match('/^(\d{1,15})\s*([KMG]?)$/i', trim($setting), $match)) {
            return null;
        }
        $bytes = (int) $match[1] * self::UNIT_BYTES[strtoupper($match[2])];

        return $bytes > 0 ? $bytes : null;
    }
}
