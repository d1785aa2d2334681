<?php

declare(strict_types=1);

namespace Jobgate\Worker;

/**
 * The worker's exit codes. A supervisor restarts the process after any of them.
 */
final class ExitCode
{
    /** `--help` printed the usage. */
    public const HELP = 0;
    /** Stopped by SIGTERM, SIGINT, SIGQUIT or SIGHUP, after finishing the current job. */
    public const SIGNAL = 0;
    /** A fatal error in the worker itself (not in a handler), or a handler's exit() mid-job. */
    public const ERROR = 1;
    public const MEMORY_LIMIT = 12;
    public const MAX_JOBS = 13;
    public const MAX_TIME = 14;
    /** A job ran past its timeout: it was retried and the process exits to start afresh. */
    public const JOB_TIMEOUT = 15;
    /** A bad or unknown command-line option (sysexits EX_USAGE). */
    public const USAGE = 64;
    /** A bad handlers file or Lua directory, a missing extension (sysexits EX_CONFIG). */
    public const CONFIG = 78;
    /**
     * PHP itself ended the process on a fatal error (a handler past memory_limit, say): the job
     * is not reported, its lease runs out and it runs again.
     */
    public const PHP_FATAL = 255;

    private const REASONS = [
        self::SIGNAL => 'signal',
        self::MEMORY_LIMIT => 'memory',
        self::MAX_JOBS => 'max_jobs',
        self::MAX_TIME => 'max_time',
        self::JOB_TIMEOUT => 'timeout',
    ];

    /** The `reason` of the `worker stopping` log line. */
    public static function reason(int $code): string
    {
        return self::REASONS[$code] ?? 'error';
    }
}
