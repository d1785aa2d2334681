<?php

declare(strict_types=1);

namespace Jobgate\Worker\Cli;

use ErrorException;
use Jobgate\Worker\ConfigError;
use Jobgate\Worker\ExitCode;
use Jobgate\Worker\HandlerMap;
use Jobgate\Worker\Logger;
use Jobgate\Worker\StopRequest;
use Jobgate\Worker\SystemClock;
use Jobgate\Worker\Transport\Http\CurlHttpClient;
use Jobgate\Worker\Transport\Http\HttpTransport;
use Jobgate\Worker\Transport\Http\HttpTransportOptions;
use Jobgate\Worker\Transport\Redis\ClusterConnection;
use Jobgate\Worker\Transport\Redis\RedisTransport;
use Jobgate\Worker\Transport\Redis\RedisTransportOptions;
use Jobgate\Worker\Transport\Redis\ScriptLibrary;
use Jobgate\Worker\Transport\Redis\SentinelConnection;
use Jobgate\Worker\Transport\Redis\StandaloneConnection;
use Jobgate\Worker\Transport\Retrier;
use Jobgate\Worker\Transport\Transport;
use Jobgate\Worker\Worker;
use Jobgate\Worker\WorkerOptions;

/**
 * The `jobgate-worker` command: options, handlers and transport, then the worker loop.
 */
class Application
{
    private const CONNECT_TIMEOUT_SECONDS = 2.0;
    private const FATAL_ERRORS = E_ERROR | E_PARSE | E_CORE_ERROR | E_COMPILE_ERROR;
    /** Added to the longest blocking wait to give a command's reply time to arrive. */
    private const READ_TIMEOUT_GRACE_SECONDS = 5.0;

    /**
     * What every transport needs => the functions of it the worker calls (each checked, since
     * `disable_functions` can take one away) and how to get it on Debian or Ubuntu.
     */
    private const REQUIRED_EXTENSIONS = [
        'pcntl' => [
            ['pcntl_async_signals', 'pcntl_signal', 'pcntl_alarm', 'pcntl_sigprocmask', 'pcntl_sigtimedwait'],
            'it is part of php-cli (apt-get install php-cli); check that disable_functions does not list it',
        ],
        'ctype' => [
            ['ctype_digit'],
            'it comes with php-cli (apt-get install php-cli); enable it with phpenmod ctype',
        ],
    ];

    /**
     * @param array<string, string> $env
     * @param resource $stdout
     * @param resource $stderr
     */
    public function __construct(
        private readonly array $env,
        private $stdout,
        private $stderr,
        private readonly string $defaultLuaDir,
    ) {
    }

    /** @param list<string> $args the arguments after the program name */
    public function run(array $args): int
    {
        if (OptionParser::wantsHelp($args)) {
            fwrite($this->stdout, Usage::TEXT);

            return ExitCode::HELP;
        }
        try {
            $config = (new OptionParser($this->env, $this->defaultLuaDir, self::defaultWorkerId()))->parse($args);
        } catch (UsageError $error) {
            fwrite($this->stderr, "jobgate-worker: {$error->getMessage()}\n\n" . Usage::TEXT);

            return ExitCode::USAGE;
        }
        $logger = new Logger($config->workerId, $this->stderr);
        $stop = new StopRequest();
        try {
            $this->checkExtensions();
            $handlers = $this->loadHandlers($config->handlersFile);
            $transport = $this->transport($config, $logger, $stop);
        } catch (ConfigError $error) {
            fwrite($this->stderr, "jobgate-worker: configuration error: {$error->getMessage()}\n");

            return ExitCode::CONFIG;
        }
        $this->warnOfPhpMemoryLimit($config, $logger);
        $worker = $this->worker($transport, $handlers, $config, $logger, $stop);
        $this->reportPhpErrorsAsLogLines($logger, $worker);

        return $worker->run();
    }

    /**
     * A fatal error PHP raises while compiling the file (a function declared twice, say) cannot
     * be caught, nor can an exit() in the file: either still ends the process as a configuration
     * error, with the reason.
     *
     * @throws ConfigError
     */
    protected function loadHandlers(string $file): HandlerMap
    {
        $loading = true;
        $display = ini_set('display_errors', '0');
        $log = ini_set('log_errors', '0');
        register_shutdown_function(function () use (&$loading, $file): void {
            if (!$loading) {
                return;
            }
            $error = error_get_last();
            $why = $error !== null && ($error['type'] & self::FATAL_ERRORS) !== 0
                ? "{$error['message']} at {$error['file']}:{$error['line']}"
                : 'it ended the process (exit() or die() in the file)';
            fwrite(
                $this->stderr,
                "jobgate-worker: configuration error: handlers file {$file} failed to load: {$why}\n",
            );
            exit(ExitCode::CONFIG);
        });
        try {
            return HandlerMap::fromFile($file);
        } finally {
            $loading = false;
            ini_set('display_errors', (string) $display);
            ini_set('log_errors', (string) $log);
        }
    }

    /**
     * `--memory` stops the worker between jobs; PHP's own limit ends it in the middle of one (an
     * attempt spent, the job back only when its lease runs out). Below `--memory`, it comes first.
     * Without one (Debian's php-cli sets none), a handler that keeps allocating holds the machine's
     * memory until `--timeout` stops it.
     */
    protected function warnOfPhpMemoryLimit(WorkerConfig $config, Logger $logger): void
    {
        $setting = ini_get('memory_limit');
        if ($setting !== false && trim($setting) === '-1') {
            $logger->warn('memory_limit is unlimited', [
                'memory_limit' => $setting,
                'memory_mb' => $config->memoryMb,
                'error' => 'a handler that keeps allocating is stopped only by --timeout: '
                    . 'set a limit above --memory (php -d memory_limit=…)',
            ]);

            return;
        }
        $limit = PhpMemoryLimit::bytes($setting);
        if ($limit !== null && $config->memoryMb * 1024 * 1024 >= $limit) {
            $logger->warn('memory_limit not above --memory', [
                'memory_limit' => $setting,
                'memory_mb' => $config->memoryMb,
                'error' => 'PHP ends the process mid-job before --memory stops it between jobs: '
                    . 'lower --memory or raise memory_limit (php -d memory_limit=…)',
            ]);
        }
    }

    protected function worker(
        Transport $transport,
        HandlerMap $handlers,
        WorkerConfig $config,
        Logger $logger,
        StopRequest $stop,
    ): Worker {
        return new Worker($transport, $handlers, new WorkerOptions(
            queues: $config->queues,
            timeoutSeconds: $config->timeoutSeconds,
            leaseSeconds: $config->leaseSeconds,
            memoryMb: $config->memoryMb,
            maxJobs: $config->maxJobs,
            maxTimeSeconds: $config->maxTimeSeconds,
        ), $logger, stop: $stop);
    }

    /** @throws ConfigError naming the first extension the worker needs that is missing */
    protected function checkExtensions(): void
    {
        foreach (self::REQUIRED_EXTENSIONS as $extension => [$functions, $hint]) {
            foreach ($functions as $function) {
                if (!$this->functionExists($function)) {
                    throw new ConfigError("the worker needs the {$extension} extension, "
                        . "and {$function}() is missing or disabled: {$hint}");
                }
            }
        }
    }

    /** Tests override it to take a function away. */
    protected function functionExists(string $function): bool
    {
        return function_exists($function);
    }

    /** @throws ConfigError */
    protected function transport(WorkerConfig $config, Logger $logger, StopRequest $stop): Transport
    {
        $clock = new SystemClock();
        if ($config->transport === 'http') {
            if (!extension_loaded('curl')) {
                throw new ConfigError('--transport=http needs the curl extension (apt-get install php-curl)');
            }

            $options = new HttpTransportOptions(
                gatewayUrl: (string) $config->gatewayUrl,
                queues: $config->queues,
                workerId: $config->workerId,
                leaseMs: $config->leaseSeconds * 1000,
                blockMs: $config->blockMs(),
                apiKey: $config->apiKey,
            );
            $replyTimeout = $options->replyTimeoutMs() / 1000;
            $this->warnOfALeaseNoLongerThan(
                $replyTimeout,
                $config,
                $logger,
                "keep --lease above {$replyTimeout} s (a reserve's long poll, at most 1 s, plus 15 s for the request)",
            );

            return new HttpTransport(
                new CurlHttpClient(),
                $options,
                new Retrier($logger, $clock, 'gateway unavailable, retrying', stop: $stop),
                $stop,
            );
        }
        if (!extension_loaded('redis')) {
            throw new ConfigError('--transport=redis needs the redis extension (apt-get install php-redis)');
        }
        $unreadable = $config->redis->tls?->unreadableFiles() ?? [];
        if ($unreadable !== []) {
            throw new ConfigError('cannot read the Redis TLS file ' . implode(', ', $unreadable));
        }
        $scripts = ScriptLibrary::fromDirectory($config->luaDir);
        // The longest blocking call is one slice of an idle wait: a silent host is noticed, and a
        // stop request obeyed, that soon after it, whatever --sleep is.
        $readTimeout = min($config->sleepSeconds, Transport::IDLE_WAIT_SLICE_MS / 1000)
            + self::READ_TIMEOUT_GRACE_SECONDS;
        $this->warnOfALeaseNoLongerThan(
            $readTimeout,
            $config,
            $logger,
            "keep --lease above {$readTimeout} s (a wait for work, at most 1 s, plus 5 s for the reply)",
        );
        $connection = match (true) {
            $config->sentinel !== null => new SentinelConnection(
                $config->sentinel,
                $config->redis,
                self::CONNECT_TIMEOUT_SECONDS,
                $readTimeout,
                $clock,
            ),
            $config->clusterSeeds !== null => new ClusterConnection(
                $config->clusterSeeds,
                self::CONNECT_TIMEOUT_SECONDS,
                $readTimeout,
            ),
            default => new StandaloneConnection($config->redis, self::CONNECT_TIMEOUT_SECONDS, $readTimeout),
        };

        return new RedisTransport(
            $connection,
            $scripts,
            new RedisTransportOptions(
                queues: $config->queues,
                workerId: $config->workerId,
                leaseMs: $config->leaseSeconds * 1000,
                blockMs: $config->blockMs(),
                prefix: $config->prefix,
                jobRetentionMs: $config->jobRetentionMs,
                deadRetentionMs: $config->deadRetentionMs,
                eventsMaxLen: $config->eventsMaxLen,
            ),
            new Retrier($logger, $clock, 'redis unavailable, reconnecting', stop: $stop),
            stop: $stop,
        );
    }

    /**
     * A reply given up on only after the lease ran out (a silent connection, a stalled gateway)
     * costs the job it leased a wait for that lease and an attempt: say so at start.
     */
    private function warnOfALeaseNoLongerThan(
        float $replyTimeoutSeconds,
        WorkerConfig $config,
        Logger $logger,
        string $advice,
    ): void {
        if ($config->leaseSeconds > $replyTimeoutSeconds) {
            return;
        }
        $logger->warn('lease no longer than the reply timeout', [
            'lease_s' => $config->leaseSeconds,
            'reply_timeout_s' => $replyTimeoutSeconds,
            'transport' => $config->transport,
            'error' => "a job whose reserve reply was lost waits out its lease: {$advice}",
        ]);
    }

    /**
     * PHP warnings and notices (a handler's, typically) become log lines instead of raw text on
     * the same stream, so stderr stays one JSON object per line; errors PHP would stop on
     * (`E_USER_ERROR`, `E_RECOVERABLE_ERROR`) are thrown, so the job fails as if the handler had
     * thrown. A fatal error (PHP then exits 255) gets a last line naming the job that was running;
     * so does a handler's `exit()`, which then ends the process with 1: a supervisor must not take
     * it for a clean stop.
     */
    protected function reportPhpErrorsAsLogLines(Logger $logger, Worker $worker): void
    {
        $handler = static function (int $level, string $message, string $file, int $line) use ($logger, $worker): bool {
            if ((error_reporting() & $level) === 0) {
                return false;
            }
            if (($level & (E_USER_ERROR | E_RECOVERABLE_ERROR)) !== 0) {
                throw new ErrorException($message, 0, $level, $file, $line);
            }
            $job = $worker->currentJob();
            $logger->warn('php warning', ($job === null ? [] : Logger::jobFields($job)) + [
                'error' => $message,
                'error_level' => $level,
                'at' => "{$file}:{$line}",
            ]);

            return true;
        };
        set_error_handler($handler);
        // PHP's own report of a fatal error would be a raw line on stderr before the JSON one.
        ini_set('log_errors', '0');
        ini_set('display_errors', '0');
        register_shutdown_function(static function () use ($logger, $worker): void {
            $error = error_get_last();
            if ($error !== null && ($error['type'] & self::FATAL_ERRORS) !== 0) {
                $job = $worker->currentJob();
                $logger->error('worker failed', ($job === null ? [] : Logger::jobFields($job)) + [
                    'error' => $error['message'],
                    'error_class' => 'FatalError',
                    'at' => "{$error['file']}:{$error['line']}",
                    'exit_code' => ExitCode::PHP_FATAL,
                ]);

                return;
            }
            $job = $worker->unreportedJob();
            if ($job !== null) {
                $logger->error('worker failed', Logger::jobFields($job) + [
                    'error' => 'the process was ended while the job ran (exit() in the handler?)',
                    'error_class' => 'Exit',
                    'next' => 'the job runs again when its lease runs out',
                    'exit_code' => ExitCode::ERROR,
                ]);
                exit(ExitCode::ERROR);
            }
        });
    }

    /** `<hostname>:<pid>`, with characters a worker id may not hold replaced. */
    private static function defaultWorkerId(): string
    {
        $host = preg_replace('/[^A-Za-z0-9_.-]/', '-', (string) gethostname()) ?: 'localhost';

        return substr($host, 0, 100) . ':' . getmypid();
    }
}
