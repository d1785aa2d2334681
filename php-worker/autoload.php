<?php

/**
 * A small PSR-4 autoloader for running without Composer (no vendor/ directory).
 * With Composer, vendor/autoload.php does the same job.
 */

declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    $prefix = 'Jobgate\\Worker\\';
    if (!str_starts_with($class, $prefix)) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
