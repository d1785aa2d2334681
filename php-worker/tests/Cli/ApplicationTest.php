<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Cli;

use Jobgate\Worker\Cli\Application;
use Jobgate\Worker\Cli\PhpMemoryLimit;
use Jobgate\Worker\ExitCode;
use Jobgate\Worker\Logger;
use Jobgate\Worker\Tests\Fakes\FakeMemoryGauge;
use Jobgate\Worker\Tests\Fakes\TestableWorker;
use Jobgate\Worker\Worker;
use PHPUnit\Framework\TestCase;

final class ApplicationTest extends TestCase
{
    private const LUA_DIR = __DIR__ . '/../../../lua';
    private const HANDLERS = __DIR__ . '/../../examples/handlers.php';

    /** @var resource */
    private $stdout;
    /** @var resource */
    private $stderr;

    protected function setUp(): void
    {
        $this->stdout = fopen('php://memory', 'w+') ?: throw new \RuntimeException('no memory stream');
        $this->stderr = fopen('php://memory', 'w+') ?: throw new \RuntimeException('no memory stream');
    }

    public function testHelpPrintsUsageAndExits0(): void
    {
        self::assertSame(0, $this->runApplication(['--help']));
        self::assertStringContainsString('Usage: jobgate-worker', $this->output($this->stdout));
    }

    public function testABadOptionPrintsUsageOnStderrAndExits64(): void
    {
        $code = $this->runApplication(['--queue=q', '--handlers=' . self::HANDLERS, '--bogus']);

        self::assertSame(ExitCode::USAGE, $code);
        $stderr = $this->output($this->stderr);
        self::assertStringContainsString('jobgate-worker: unknown option --bogus', $stderr);
        self::assertStringContainsString('Usage: jobgate-worker', $stderr);
    }

    public function testABadRedisUrlInTheEnvironmentExits64NamingItWithoutThePassword(): void
    {
        $code = $this->runApplication(
            ['--queue=q', '--handlers=' . self::HANDLERS],
            ['REDIS_URL' => 'redis://hunter2@db.example:6379'],
        );

        self::assertSame(ExitCode::USAGE, $code);
        $stderr = $this->output($this->stderr);
        self::assertStringContainsString(
            'jobgate-worker: REDIS_URL: the login of a Redis URL has no password: write the password after a colon',
            $stderr,
        );
        self::assertStringContainsString('(got "redis://***@db.example:6379")', $stderr);
        self::assertStringNotContainsString('hunter2', $stderr);
    }

    public function testAMissingHandlersFileExits78(): void
    {
        $code = $this->runApplication(['--queue=q', '--handlers=/nonexistent/handlers.php']);

        self::assertSame(ExitCode::CONFIG, $code);
        self::assertStringContainsString('handlers file not found', $this->output($this->stderr));
    }

    public function testAHandlersFileThatDoesNotReturnAnArrayExits78(): void
    {
        $code = $this->runApplication(['--queue=q', '--handlers=' . __DIR__ . '/../fixtures/not-an-array.php']);

        self::assertSame(ExitCode::CONFIG, $code);
        self::assertStringContainsString('must return an array', $this->output($this->stderr));
    }

    public function testAMissingLuaDirectoryExits78(): void
    {
        $code = $this->runApplication(['--queue=q', '--handlers=' . self::HANDLERS, '--lua-dir=/nonexistent/lua']);

        self::assertSame(ExitCode::CONFIG, $code);
        self::assertStringContainsString('Lua directory not found: /nonexistent/lua', $this->output($this->stderr));
    }

    public function testAnUnreadableTlsFileExits78(): void
    {
        $code = $this->runApplication([
            '--queue=q',
            '--handlers=' . self::HANDLERS,
            '--redis=rediss://127.0.0.1:1',
            '--redis-tls-ca=/nonexistent/ca.pem',
        ]);

        self::assertSame(ExitCode::CONFIG, $code);
        self::assertStringContainsString(
            'cannot read the Redis TLS file /nonexistent/ca.pem',
            $this->output($this->stderr),
        );
    }

    /** @dataProvider missingFunctions */
    public function testAMissingOrDisabledExtensionExits78WithAHint(string $function, string $hint): void
    {
        $application = new class ([], $this->stdout, $this->stderr, self::LUA_DIR, $function) extends Application {
            /** @param array<string, string> $env */
            public function __construct(array $env, $stdout, $stderr, string $luaDir, private string $missing)
            {
                parent::__construct($env, $stdout, $stderr, $luaDir);
            }

            protected function functionExists(string $function): bool
            {
                return $function !== $this->missing;
            }

            protected function reportPhpErrorsAsLogLines(Logger $logger, Worker $worker): void
            {
            }
        };
        // Were the check missing, --memory=1 would end the worker at once (exit 12).
        $code = $application->run(['--queue=q', '--handlers=' . self::HANDLERS, '--memory=1']);

        self::assertSame(ExitCode::CONFIG, $code);
        $stderr = $this->output($this->stderr);
        self::assertStringContainsString("jobgate-worker: configuration error: the worker needs the", $stderr);
        self::assertStringContainsString("{$function}() is missing or disabled", $stderr);
        self::assertStringContainsString($hint, $stderr);
    }

    /** @return array<string, array{string, string}> */
    public static function missingFunctions(): array
    {
        return [
            'pcntl_async_signals' => ['pcntl_async_signals', 'pcntl extension'],
            'pcntl_signal' => ['pcntl_signal', 'apt-get install php-cli'],
            'pcntl_alarm' => ['pcntl_alarm', 'disable_functions'],
            'ctype' => ['ctype_digit', 'phpenmod ctype'],
        ];
    }

    public function testAPhpFatalErrorInAHandlerExits255WithALastJsonLineNamingTheJobAndNoRawOne(): void
    {
        $process = proc_open(
            [
                PHP_BINARY, '-d', 'memory_limit=32M', '-d', 'log_errors=1', '-d', 'display_errors=stderr',
                __DIR__ . '/../fixtures/fatal-in-handler.php',
            ],
            [1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
            $pipes,
        );
        self::assertIsResource($process);
        $stdout = (string) stream_get_contents($pipes[1]);
        $stderr = (string) stream_get_contents($pipes[2]);
        $code = proc_close($process);

        self::assertSame(ExitCode::PHP_FATAL, $code, $stdout . $stderr);
        $lines = array_map(
            static fn (string $line) => json_decode($line, true),
            explode("\n", trim($stdout . "\n" . $stderr)),
        );
        $raw = array_filter($lines, static fn ($line) => !is_array($line));
        self::assertSame([], array_keys($raw), 'only JSON lines');
        $failed = array_values(array_filter($lines, static fn ($line) => ($line['msg'] ?? null) === 'worker failed'));
        self::assertCount(1, $failed, $stderr);
        self::assertSame(
            ['job_id' => 'job-7', 'type' => 'hog', 'attempt' => 2, 'error_class' => 'FatalError', 'exit_code' => 255],
            array_intersect_key($failed[0], array_flip(['job_id', 'type', 'attempt', 'error_class', 'exit_code'])),
        );
        self::assertStringContainsString('Allowed memory size', $failed[0]['error']);
    }

    public function testTheSharedLuaDirectoryIsFoundByDefault(): void
    {
        // Gets past the configuration checks: the worker starts and fails to reach Redis (port 1).
        $application = new class ([], $this->stdout, $this->stderr, self::LUA_DIR) extends Application {
            public ?string $transportName = null;

            protected function worker(
                \Jobgate\Worker\Transport\Transport $transport,
                \Jobgate\Worker\HandlerMap $handlers,
                \Jobgate\Worker\Cli\WorkerConfig $config,
                \Jobgate\Worker\Logger $logger,
                \Jobgate\Worker\StopRequest $stop,
            ): \Jobgate\Worker\Worker {
                $this->transportName = $transport->name();
                $options = new \Jobgate\Worker\WorkerOptions(queues: $config->queues, memoryMb: $config->memoryMb);

                return new TestableWorker($transport, $handlers, $options, $logger, stop: $stop);
            }

            protected function reportPhpErrorsAsLogLines(Logger $logger, Worker $worker): void
            {
            }
        };
        $code = $application->run(['--queue=q', '--handlers=' . self::HANDLERS, '--memory=1']);

        self::assertSame('redis', $application->transportName);
        self::assertSame(ExitCode::MEMORY_LIMIT, $code, 'stops before its first reserve');
    }

    /** @dataProvider memoryLimits */
    public function testPhpMemoryLimitIsReadAsPhpIniWritesIt(string|false $setting, ?int $bytes): void
    {
        self::assertSame($bytes, PhpMemoryLimit::bytes($setting));
    }

    /** @return array<string, array{string|false, ?int}> */
    public static function memoryLimits(): array
    {
        return [
            'megabytes' => ['128M', 134_217_728],
            'gigabytes, lower case' => ['2g', 2_147_483_648],
            'kilobytes' => ['512K', 524_288],
            'bytes' => ['1000000', 1_000_000],
            'no limit' => ['-1', null],
            'unreadable' => [false, null],
        ];
    }

    public function testAMemoryLimitAtOrBelowTheWorkersOwnIsWarnedOfAtStart(): void
    {
        $previous = ini_set('memory_limit', '1G');
        try {
            $below = $this->startAndStopAtOnce(1023);
            $at = $this->startAndStopAtOnce(1024);
        } finally {
            ini_set('memory_limit', (string) $previous);
        }
        self::assertSame([], $below, 'below: nothing to say');
        self::assertCount(1, $at);
        self::assertSame('warn', $at[0]['level']);
        self::assertSame('memory_limit not above --memory', $at[0]['msg']);
        self::assertSame(['1G', 1024], [$at[0]['memory_limit'], $at[0]['memory_mb']]);
    }

    public function testNoMemoryLimitIsWarnedOfAtStart(): void
    {
        $previous = ini_set('memory_limit', '-1');
        try {
            $lines = $this->startAndStopAtOnce(96);
        } finally {
            ini_set('memory_limit', (string) $previous);
        }
        self::assertCount(1, $lines);
        self::assertSame(['warn', 'memory_limit is unlimited'], [$lines[0]['level'], $lines[0]['msg']]);
        self::assertSame(['-1', 96], [$lines[0]['memory_limit'], $lines[0]['memory_mb']]);
        self::assertStringContainsString('--timeout', $lines[0]['error']);
    }

    public function testALeaseNoLongerThanTheReadTimeoutIsWarnedOf(): void
    {
        $about = 'lease no longer than the reply timeout';
        // An idle wait blocks 1 s at a time, whatever --sleep: the read timeout is 1 s plus 5 s.
        self::assertSame([], $this->startAndStopAtOnce(1, ['--lease=7', '--sleep=30'], $about));
        $lines = $this->startAndStopAtOnce(1, ['--lease=6', '--sleep=30'], $about);
        self::assertCount(1, $lines);
        self::assertSame(
            ['warn', 6, 6.0, 'redis'],
            [$lines[0]['level'], $lines[0]['lease_s'], $lines[0]['reply_timeout_s'], $lines[0]['transport']],
        );
        self::assertStringContainsString('keep --lease above 6 s', $lines[0]['error']);
        $short = $this->startAndStopAtOnce(1, ['--lease=5', '--sleep=0.5'], $about);
        self::assertSame(5.5, $short[0]['reply_timeout_s'], 'a shorter --sleep waits less');
    }

    public function testOverHttpALeaseNoLongerThanARequestsTimeoutIsWarnedOf(): void
    {
        $about = 'lease no longer than the reply timeout';
        $http = ['--transport=http', '--gateway=http://127.0.0.1:9'];
        self::assertSame([], $this->startAndStopAtOnce(1, [...$http, '--lease=17', '--sleep=30'], $about));
        $lines = $this->startAndStopAtOnce(1, [...$http, '--lease=16', '--sleep=30'], $about);
        self::assertCount(1, $lines);
        self::assertSame(
            [16, 16.0, 'http'],
            [$lines[0]['lease_s'], $lines[0]['reply_timeout_s'], $lines[0]['transport']],
        );
        self::assertStringContainsString('keep --lease above 16 s', $lines[0]['error']);
        $short = $this->startAndStopAtOnce(1, [...$http, '--lease=15', '--sleep=0.5'], $about);
        self::assertSame(15.5, $short[0]['reply_timeout_s'], 'a shorter --sleep waits less');
    }

    /**
     * Runs the application with --memory=$memoryMb and a worker that finds itself over it at
     * once (it stops before its first reserve).
     *
     * @param list<string> $args more options
     * @return list<array<string, mixed>> the lines it logged whose message starts with $about
     */
    private function startAndStopAtOnce(int $memoryMb, array $args = [], string $about = 'memory_limit '): array
    {
        $stderr = fopen('php://memory', 'w+') ?: throw new \RuntimeException('no memory stream');
        $application = new class ([], $this->stdout, $stderr, self::LUA_DIR) extends Application {
            protected function worker(
                \Jobgate\Worker\Transport\Transport $transport,
                \Jobgate\Worker\HandlerMap $handlers,
                \Jobgate\Worker\Cli\WorkerConfig $config,
                Logger $logger,
                \Jobgate\Worker\StopRequest $stop,
            ): Worker {
                $options = new \Jobgate\Worker\WorkerOptions(queues: $config->queues, memoryMb: $config->memoryMb);
                $full = new FakeMemoryGauge(2 * 1024 ** 3);

                return new TestableWorker($transport, $handlers, $options, $logger, memory: $full, stop: $stop);
            }

            protected function reportPhpErrorsAsLogLines(Logger $logger, Worker $worker): void
            {
            }
        };
        $redis = in_array('--transport=http', $args, true) ? [] : ['--redis=redis://127.0.0.1:1'];
        $code = $application->run([
            '--queue=q', '--handlers=' . self::HANDLERS, ...$redis, "--memory={$memoryMb}", ...$args,
        ]);
        self::assertSame(ExitCode::MEMORY_LIMIT, $code);
        $lines = array_map(
            static fn (string $line) => json_decode($line, true),
            explode("\n", trim($this->output($stderr))),
        );

        return array_values(array_filter(
            $lines,
            static fn (array $line) => str_starts_with($line['msg'], $about),
        ));
    }

    /**
     * @param list<string> $args
     * @param array<string, string> $env
     */
    private function runApplication(array $args, array $env = []): int
    {
        return (new Application($env, $this->stdout, $this->stderr, self::LUA_DIR))->run($args);
    }

    /** @param resource $stream */
    private function output($stream): string
    {
        rewind($stream);

        return (string) stream_get_contents($stream);
    }
}
