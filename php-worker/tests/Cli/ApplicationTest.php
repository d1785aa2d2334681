<?php

declare(strict_types=1);

namespace Jobgate\Worker\Tests\Cli;

use Jobgate\Worker\Cli\Application;
use Jobgate\Worker\ExitCode;
use Jobgate\Worker\Tests\Fakes\TestableWorker;
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

            protected function reportPhpErrorsAsLogLines(\Jobgate\Worker\Logger $logger): void
            {
            }
        };
        $code = $application->run(['--queue=q', '--handlers=' . self::HANDLERS, '--memory=1']);

        self::assertSame('redis', $application->transportName);
        self::assertSame(ExitCode::MEMORY_LIMIT, $code, 'stops before its first reserve');
    }

    /** @param list<string> $args */
    private function runApplication(array $args): int
    {
        return (new Application([], $this->stdout, $this->stderr, self::LUA_DIR))->run($args);
    }

    /** @param resource $stream */
    private function output($stream): string
    {
        rewind($stream);

        return (string) stream_get_contents($stream);
    }
}
