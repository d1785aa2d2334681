<?php

declare(strict_types=1);

namespace Jobgate\Worker;

use Throwable;

/**
 * Why a job failed, as stored in its `last_error`: a message (at most 8192 bytes) and a class.
 */
final class ErrorReport
{
    public const MAX_MESSAGE_BYTES = 8192;
    public const MAX_CLASS_BYTES = 256;

    public readonly string $message;
    public readonly string $class;

    public function __construct(string $message, string $class)
    {
        $message = Json::utf8Truncate($message, self::MAX_MESSAGE_BYTES);
        // The HTTP contract requires a non-empty message.
        $this->message = $message === '' ? '(no message)' : $message;
        $this->class = Json::utf8Truncate($class === '' ? 'Error' : $class, self::MAX_CLASS_BYTES);
    }

    public static function fromThrowable(Throwable $error): self
    {
        return new self($error->getMessage(), $error::class);
    }
}
