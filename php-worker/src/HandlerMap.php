<?php

declare(strict_types=1);

namespace Jobgate\Worker;

use Closure;
use ReflectionClass;
use Throwable;
use UnexpectedValueException;

/**
 * The explicit allow-list of job types this worker runs, each with its handler. A type that is
 * not in the map never runs: nothing is ever instantiated from a name found in queue data.
 *
 * Entries are a Handler, the class name of a Handler (instantiated without arguments on first
 * use), or a Closure returning a Handler (called on first use).
 */
final class HandlerMap
{
    /** @var array<string, Handler> */
    private array $resolved = [];

    /** @param array<string, Handler|class-string<Handler>|Closure(): Handler> $entries */
    private function __construct(private readonly array $entries)
    {
    }

    /**
     * @param array<mixed> $entries
     * @throws ConfigError when an entry cannot give a Handler
     */
    public static function fromArray(array $entries, string $origin = 'the handler map'): self
    {
        $map = [];
        foreach ($entries as $type => $entry) {
            $type = (string) $type;
            if ($type === '') {
                throw new ConfigError("{$origin}: a job type must be a non-empty string");
            }
            $problem = self::problemWith($entry);
            if ($problem !== null) {
                throw new ConfigError("{$origin}: the entry for job type \"{$type}\" {$problem}");
            }
            $map[$type] = $entry;
        }

        return new self($map);
    }

    /**
     * Loads a handlers file: a PHP file that returns the map.
     *
     * @throws ConfigError
     */
    public static function fromFile(string $path): self
    {
        if (!is_file($path) || !is_readable($path)) {
            throw new ConfigError("handlers file not found or unreadable: {$path}");
        }
        try {
            $entries = (static fn (string $file): mixed => require $file)($path);
        } catch (Throwable $error) {
            throw new ConfigError("handlers file {$path} failed to load: {$error->getMessage()}", 0, $error);
        }
        if (!is_array($entries)) {
            throw new ConfigError(
                "handlers file {$path} must return an array of job type => Handler, got " . get_debug_type($entries),
            );
        }
        if ($entries === []) {
            throw new ConfigError(
                "handlers file {$path} maps no job type: the worker would fail every job it leases",
            );
        }

        return self::fromArray($entries, "handlers file {$path}");
    }

    public function has(string $type): bool
    {
        return isset($this->entries[$type]);
    }

    /** @return list<string> */
    public function types(): array
    {
        return array_map('strval', array_keys($this->entries));
    }

    /**
     * The handler of a type in the map.
     *
     * @throws InvalidHandler when a lazy entry does not produce a Handler
     * @throws UnexpectedValueException when the type is not in the map
     */
    public function get(string $type): Handler
    {
        if (isset($this->resolved[$type])) {
            return $this->resolved[$type];
        }
        $entry = $this->entries[$type] ?? throw new UnexpectedValueException("no handler for job type {$type}");
        $handler = match (true) {
            $entry instanceof Handler => $entry,
            $entry instanceof Closure => $entry(),
            default => new $entry(),
        };
        if (!$handler instanceof Handler) {
            throw new InvalidHandler(
                "the factory for job type {$type} returned " . get_debug_type($handler) . ', not a ' . Handler::class,
            );
        }

        return $this->resolved[$type] = $handler;
    }

    /** Why an entry is not usable, or null when it is. */
    private static function problemWith(mixed $entry): ?string
    {
        if ($entry instanceof Handler || $entry instanceof Closure) {
            return null;
        }
        if (is_string($entry)) {
            if (!class_exists($entry) && !interface_exists($entry)) {
                return "names class {$entry}, which does not exist";
            }
            $class = new ReflectionClass($entry);
            if ($class->isInterface()) {
                return "names interface {$entry}: name a class that implements " . Handler::class;
            }
            if (!is_subclass_of($entry, Handler::class)) {
                return "names class {$entry}, which does not implement " . Handler::class;
            }
            if (!$class->isInstantiable()) {
                $what = $class->isAbstract() ? 'an abstract class' : 'a class that cannot be instantiated';
                return "names {$what}, {$entry}: name a concrete class, an instance or a Closure";
            }
            if (($class->getConstructor()?->getNumberOfRequiredParameters() ?? 0) > 0) {
                return "names class {$entry}, whose constructor needs arguments: register an instance or a Closure";
            }

            return null;
        }

        return 'must be a ' . Handler::class . ', its class name or a Closure returning one; got '
            . get_debug_type($entry);
    }
}
