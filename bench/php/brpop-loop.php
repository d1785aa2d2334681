<?php

/**
 * The PHP ceiling for the worker benchmark: a bare phpredis loop that BRPOPs a message and
 * json_decodes it, with no lease, ack, history or events. Stops after --count messages.
 *
 *   php bench/php/brpop-loop.php --redis=redis://127.0.0.1:6379 --list=bench:plain --count=20000
 */

declare(strict_types=1);

$options = getopt('', ['redis:', 'list:', 'count:']);
$url = parse_url((string) ($options['redis'] ?? 'redis://127.0.0.1:6379'));
$list = (string) ($options['list'] ?? 'bench:plain');
$count = (int) ($options['count'] ?? 0);

$redis = new Redis();
$redis->connect($url['host'] ?? '127.0.0.1', (int) ($url['port'] ?? 6379));

for ($done = 0; $done < $count; $done++) {
    $popped = $redis->brPop([$list], 5);
    if (!is_array($popped) || count($popped) !== 2) {
        fwrite(STDERR, "brpop-loop: no message after {$done} of {$count}\n");
        exit(1);
    }
    json_decode($popped[1], true, 512, JSON_THROW_ON_ERROR);
}
