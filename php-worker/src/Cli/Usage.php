<?php

declare(strict_types=1);

namespace Jobgate\Worker\Cli;

final class Usage
{
    public const TEXT = <<<'TEXT'
        Usage: jobgate-worker --queue=NAME [--queue=NAME…] --handlers=FILE [options]

        Runs jobs of the given queues (highest priority first) with the handlers the FILE returns
        (a PHP file returning array<job type, Handler|class-string|Closure(): Handler>).

          --queue=NAME            a queue to work on; repeat for several, in priority order
          --handlers=FILE         the handler map
          --transport=redis|http  how to reach the jobs (default redis)
          --redis=URL             redis[s]://[[user]:password@]host[:port][/db], rediss:// for TLS;
                                  no query string  [REDIS_URL, default redis://127.0.0.1:6379]
          --redis-tls-ca=FILE     PEM certificate authorities to trust for rediss://, instead of
                                  OpenSSL's  [REDIS_TLS_CA_FILE]
          --redis-tls-cert=FILE   a PEM client certificate, for servers that require one, with
          --redis-tls-key=FILE    its key  [REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE]
          --cluster=HOST:PORT,…   Redis Cluster seed nodes; --redis then lends only its user,
                                  password and TLS (its db must be 0)  [REDIS_CLUSTER_NODES]
          --sentinel=HOST:PORT,…  Redis Sentinels to ask for the primary, in order; --redis then lends
                                  only its user, password, db and TLS, not its host:port  [REDIS_SENTINELS]
          --sentinel-master=NAME  the master group the sentinels monitor, for --sentinel  [REDIS_SENTINEL_NAME]
          --sentinel-username=U   the sentinels' ACL user, with --sentinel-password  [REDIS_SENTINEL_USERNAME]
          --sentinel-password=P   for sentinels that require AUTH  [REDIS_SENTINEL_PASSWORD]
          --prefix=P              Redis key prefix  [KEY_PREFIX, default jobgate]
          --gateway=URL           the gateway, for --transport=http  [JOBGATE_URL]
          --api-key=KEY           API key with the work scope, for http  [JOBGATE_API_KEY]
          --timeout=SECONDS       a job's time limit unless it sets timeout_ms; 0 = none (default 60)
          --lease=SECONDS         lease length; heartbeats every third of it (default 30)
          --memory=MB             stop between jobs once the process holds this much (default 96)
          --max-jobs=N            stop after N jobs; 0 = no limit (default 0)
          --max-time=SECONDS      stop after this long; 0 = no limit (default 0)
          --sleep=SECONDS         longest wait for work before checking the stop conditions (default 3; 0.5 is fine);
                                  a quit signal ends the wait within a second
          --worker-id=ID          the worker's name in job records (default <hostname>:<pid>)
          --lua-dir=DIR           the protocol's Lua scripts  [JOBGATE_LUA_DIR, default <php-worker>/../lua]
          --job-retention=D       how long finished records are kept  [JOB_RETENTION, default 24h]
          --dead-retention=D      how long dead records are kept  [DEAD_RETENTION, default 7d]
          --events-max-len=N      approximate cap of each queue's event stream  [EVENTS_MAX_LEN, default 10000]
          --help                  this text

        SECONDS: a bare number of seconds, or with a unit: 500ms (--sleep only), 90s, 15m, 2h.
        Durations (D): 500ms, 30s, 15m, 24h, 7d, or a bare number of milliseconds.
        Exit codes: 0 stopped by a signal, 1 worker error, 12 memory limit, 13 --max-jobs,
        14 --max-time, 15 a job timed out, 64 usage error, 78 configuration error (or a missing
        extension), 255 PHP fatal error (e.g. memory_limit in a handler; the job's lease expires
        and it is retried).

        TEXT;
}
