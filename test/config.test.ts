import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, loadConfig } from '../src/config.js'
import { makeCertificates } from './helpers/tls.js'

function thrown(fn: () => unknown): unknown {
  try {
    fn()
  } catch (error) {
    return error
  }
  throw new Error('expected an error')
}

t.test('defaults', async (t) => {
  const config = loadConfig({})
  t.equal(config.port, 3000)
  t.equal(config.host, '127.0.0.1')
  t.equal(config.redisUrl, 'redis://127.0.0.1:6379')
  t.equal(config.keyPrefix, 'jobgate')
  t.equal(config.logLevel, 'info')
  t.equal(config.bodyLimit, 1024 * 1024)
  t.equal(config.idempotencyTtlMs, 86_400_000)
  t.equal(config.idempotencyRequired, false)
  t.equal(config.jobRetentionMs, 86_400_000)
  t.equal(config.deadRetentionMs, 7 * 86_400_000)
  t.equal(config.maxQueueDepth, 1_000_000)
  t.equal(config.maxQueues, 10_000)
  t.equal(config.requestTimeoutMs, 30_000)
  t.strictSame(config.redisWaitReplicas, { replicas: 0, timeoutMs: 500 })
  t.equal(config.trustProxy, false)
  t.ok(Object.isFrozen(config))
})

t.test('TRUST_PROXY: none, all, a hop count, or proxy addresses', async (t) => {
  const trust = (TRUST_PROXY: string) => loadConfig({ TRUST_PROXY }).trustProxy
  t.equal(trust('false'), false)
  t.equal(trust('0'), false)
  t.equal(trust('true'), true)
  t.equal(trust('2'), 2)
  t.strictSame(trust('10.0.0.0/8, 192.168.1.7,Loopback,fd00::/8'), [
    '10.0.0.0/8',
    '192.168.1.7',
    'loopback',
    'fd00::/8',
  ])
  for (const bad of ['33', 'proxy.example.com', '10.0.0.0/33', '10.0.0.1,', 'fd00::/129']) {
    t.throws(() => trust(bad), /Invalid configuration: TRUST_PROXY must be/, bad)
  }
})

t.test('units for durations and sizes', async (t) => {
  const config = loadConfig({
    IDEMPOTENCY_TTL: '90m',
    JOB_RETENTION: '2D',
    DEAD_RETENTION: '7200000',
    BODY_LIMIT: '512kb',
    SHUTDOWN_TIMEOUT: '30s',
    IDEMPOTENCY_REQUIRED: 'yes',
    LOG_LEVEL: 'DEBUG',
    REDIS_WAIT_REPLICAS: '2',
    REDIS_WAIT_TIMEOUT: '2s',
    REDIS_URL: 'redis://cache:6379/3',
    RATE_LIMIT: '50000/1d',
    RATE_LIMIT_WORK: '0',
    RATE_LIMIT_READ: '600 / m',
    RATE_LIMIT_ADMIN: '10/5000',
  })
  t.strictSame(config.rateLimits, {
    produce: { max: 50_000, windowMs: 86_400_000 },
    read: { max: 600, windowMs: 60_000 },
    work: null,
    admin: { max: 10, windowMs: 5000 },
  })
  t.equal(config.redisUrl, 'redis://cache:6379/3')
  t.strictSame(config.redisWaitReplicas, { replicas: 2, timeoutMs: 2000 })
  t.equal(config.idempotencyTtlMs, 90 * 60_000)
  t.equal(config.jobRetentionMs, 2 * 86_400_000)
  t.equal(config.deadRetentionMs, 7_200_000)
  t.equal(config.bodyLimit, 512 * 1024)
  t.equal(config.shutdownTimeoutMs, 30_000)
  t.equal(config.idempotencyRequired, true)
  t.equal(config.logLevel, 'debug')
})

t.test('a bad value names its variable', async (t) => {
  const bad: [Record<string, string>, string, RegExp][] = [
    [{ PORT: 'eighty' }, 'PORT', /integer from 0 to 65535/],
    [{ PORT: '70000' }, 'PORT', /got "70000"/],
    [{ REDIS_URL: 'localhost:6379' }, 'REDIS_URL', /must use redis: or rediss:/],
    [{ REDIS_URL: 'not a url' }, 'REDIS_URL', /must be a URL/],
    [
      { REDIS_URL: 'redis://cache:6379/jobs' },
      'REDIS_URL',
      /database by number.*got "redis:\/\/cache:6379\/jobs"/,
    ],
    [{ REDIS_URL: 'redis://cache:6379/1/2' }, 'REDIS_URL', /database by number/],
    [{ KEY_PREFIX: 'job{gate}' }, 'KEY_PREFIX', /must match/],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', /must be one of/],
    [{ BODY_LIMIT: '1gb' }, 'BODY_LIMIT', /must be a size/],
    [{ IDEMPOTENCY_TTL: '1 week' }, 'IDEMPOTENCY_TTL', /must be a duration/],
    [{ IDEMPOTENCY_REQUIRED: 'sometimes' }, 'IDEMPOTENCY_REQUIRED', /true or false/],
    [{ IDEMPOTENCY_TTL: '2d', JOB_RETENTION: '1d' }, 'JOB_RETENTION', /at least IDEMPOTENCY_TTL/],
    [{ DEAD_RETENTION: '1h' }, 'DEAD_RETENTION', /at least IDEMPOTENCY_TTL \(86400000 ms\)/],
    [{ MAX_QUEUE_DEPTH: '-1' }, 'MAX_QUEUE_DEPTH', /integer from 0/],
    [{ MAX_QUEUES: '1.5' }, 'MAX_QUEUES', /integer from 0 to 10000000/],
    [{ EVENT_STREAMS_PER_CLIENT: '0' }, 'EVENT_STREAMS_PER_CLIENT', /integer from 1 to 100000/],
    [{ SHUTDOWN_TIMEOUT: '0' }, 'SHUTDOWN_TIMEOUT', /got "0"/],
    [{ REQUEST_TIMEOUT: '500ms' }, 'REQUEST_TIMEOUT', /got "500ms"/],
    [{ RATE_LIMIT: '100/500ms' }, 'RATE_LIMIT', /window from 1s to 366d/],
    [{ RATE_LIMIT: '2/367d' }, 'RATE_LIMIT', /got "2\/367d"/],
    [{ RATE_LIMIT: '2/1S0' }, 'RATE_LIMIT', /got "2\/1S0"/],
    [{ RATE_LIMIT: '100/999' }, 'RATE_LIMIT', /window from 1s to 366d/],
    [{ RATE_LIMIT: '100/' }, 'RATE_LIMIT', /must be <requests>\/<window>/],
    [{ RATE_LIMIT_READ: '2/999999999999d' }, 'RATE_LIMIT_READ', /window from 1s to 366d/],
    [{ HOST: '[::1]' }, 'HOST', /without brackets \(got "\[::1\]"\)/],
    [{ REDIS_WAIT_REPLICAS: 'all' }, 'REDIS_WAIT_REPLICAS', /integer from 0 to 100/],
    [{ REDIS_WAIT_REPLICAS: '-1' }, 'REDIS_WAIT_REPLICAS', /got "-1"/],
    [{ REDIS_WAIT_TIMEOUT: '0' }, 'REDIS_WAIT_TIMEOUT', /from 1 ms to 60000 ms/],
    [{ REDIS_SENTINELS: 'sentinel-a' }, 'REDIS_SENTINELS', /host:port pairs/],
    [{ REDIS_SENTINELS: 'a:26379' }, 'REDIS_SENTINEL_NAME', /master group .* \(got nothing\)/],
    [
      { REDIS_SENTINELS: 'a:26379', REDIS_SENTINEL_NAME: 'my master' },
      'REDIS_SENTINEL_NAME',
      /got "my master"/,
    ],
    [{ REDIS_SENTINEL_NAME: 'jobs' }, 'REDIS_SENTINEL_NAME', /needs REDIS_SENTINELS/],
    [{ REDIS_SENTINEL_PASSWORD: 'secret' }, 'REDIS_SENTINEL_PASSWORD', /needs REDIS_SENTINELS/],
    [{ REDIS_SENTINEL_USERNAME: 'watch' }, 'REDIS_SENTINEL_USERNAME', /needs REDIS_SENTINELS/],
    [
      { REDIS_SENTINELS: 'a:26379', REDIS_SENTINEL_NAME: 'jobs', REDIS_SENTINEL_USERNAME: 'watch' },
      'REDIS_SENTINEL_USERNAME',
      /needs REDIS_SENTINEL_PASSWORD/,
    ],
    [
      { REDIS_SENTINELS: 'a:26379', REDIS_SENTINEL_NAME: 'jobs', REDIS_CLUSTER_NODES: 'b:7000' },
      'REDIS_SENTINELS',
      /cannot be set with REDIS_CLUSTER_NODES/,
    ],
  ]
  for (const [env, variable, message] of bad) {
    const error = thrown(() => loadConfig(env))
    const label = `${JSON.stringify(env)} → ${variable}`
    t.ok(error instanceof ConfigError, label)
    t.equal((error as ConfigError).variable, variable, label)
    t.match((error as ConfigError).message, `Invalid configuration: ${variable} `, label)
    t.match((error as ConfigError).message, message, label)
  }
})

t.test(
  'REDIS_URL is read as the PHP worker reads it; its login never shows in a message',
  async (t) => {
    const bad: [Record<string, string>, string, RegExp][] = [
      [
        { REDIS_URL: 'redis://:S3cret@cache:6379?db=3' },
        'REDIS_URL',
        /no query string or fragment/,
      ],
      [{ REDIS_URL: 'redis://:S3cret@cache:6379/2?' }, 'REDIS_URL', /no query string/],
      [
        { REDIS_URL: 'rediss://***@cache:6379?password=S3cret' },
        'REDIS_URL',
        /got "rediss:\/\/\*\*\*@cache:6379\?\*\*\*"/,
      ],
      [{ REDIS_URL: 'redis://:S3cret@cache:6379#main' }, 'REDIS_URL', /or fragment/],
      [{ REDIS_URL: 'redis://:S3cret@cache:0' }, 'REDIS_URL', /port from 1 to 65535/],
      [{ REDIS_URL: 'redis://u:S3cret@cache:00/1' }, 'REDIS_URL', /port from 1 to 65535/],
      [{ REDIS_URL: 'redis://S3cret@cache:6379' }, 'REDIS_URL', /password after a colon/],
      [
        { REDIS_URL: 'redis://app:100%zzS3cret@cache' },
        'REDIS_URL',
        /write a % in the password as %25/,
      ],
      [{ REDIS_URL: 'redis://app:S3cret@cache host:6379' }, 'REDIS_URL', /must be a URL/],
      [{ REDIS_URL: 'http://app:S3cret@cache:6379' }, 'REDIS_URL', /must use redis: or rediss:/],
      [
        { REDIS_URL: 'redis://app:S3cret@cache:6379/2', REDIS_CLUSTER_NODES: 'a:7000' },
        'REDIS_URL',
        /database other than 0, which a Redis Cluster/,
      ],
      [{ REDIS_CLUSTER_NODES: 'rediss://a:7000' }, 'REDIS_CLUSTER_NODES', /host:port pairs/],
      [{ REDIS_CLUSTER_NODES: 'app:S3cret@a:7000' }, 'REDIS_CLUSTER_NODES', /host:port pairs/],
      [{ REDIS_SENTINELS: 'app:S3cret@a:26379' }, 'REDIS_SENTINELS', /host:port pairs/],
    ]
    for (const [env, variable, message] of bad) {
      const error = thrown(() => loadConfig(env)) as ConfigError
      const label = JSON.stringify(env)
      t.ok(error instanceof ConfigError, label)
      t.equal(error.variable, variable, label)
      t.match(error.message, message, label)
      if (variable === 'REDIS_URL') t.match(error.message, /\(got "[a-z]+:\/\/\*\*\*@/, label)
      t.notMatch(error.message, /S3cret/, `${label}: the password is not repeated`)
    }
    // What stays accepted: a password alone or with a user, escapes that decode, database 0 in
    // a cluster, and no login at all.
    for (const url of [
      'redis://:S3cret@cache:6379/2',
      'redis://app:S%2F3cret%25@cache:6379',
      'rediss://app:S3cret@cache',
      'redis://cache',
    ]) {
      t.equal(loadConfig({ REDIS_URL: url }).redisUrl, url)
    }
    t.same(
      loadConfig({ REDIS_URL: 'redis://cache/0', REDIS_CLUSTER_NODES: 'a:7000' }).redisClusterNodes,
      [{ host: 'a', port: 7000 }],
    )
  },
)

t.test('Redis Sentinel: the sentinels, the master group and an optional login', async (t) => {
  t.equal(loadConfig({}).redisSentinel, null)
  t.strictSame(
    loadConfig({
      REDIS_SENTINELS: 'sentinel-a:26379, [::1]:26380',
      REDIS_SENTINEL_NAME: 'jobs.main',
      REDIS_SENTINEL_USERNAME: 'watch',
      REDIS_SENTINEL_PASSWORD: 's3cret',
    }).redisSentinel,
    {
      sentinels: [
        { host: 'sentinel-a', port: 26379 },
        { host: '::1', port: 26380 },
      ],
      name: 'jobs.main',
      username: 'watch',
      password: 's3cret',
    },
  )
  const open = loadConfig({ REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_NAME: 'm' }).redisSentinel
  t.equal(open?.username, null)
  t.equal(open?.password, null)
})

t.test('empty values fall back to defaults', async (t) => {
  t.equal(loadConfig({ PORT: '', HOST: '  ' }).port, 3000)
  t.equal(loadConfig({ HOST: '' }).host, '127.0.0.1')
})

t.test('TLS files for rediss:// are read and checked at boot', async (t) => {
  const certs = makeCertificates()
  t.teardown(() => certs.remove())
  const notPem = join(certs.dir, 'server.ext')
  const rediss = { REDIS_URL: 'rediss://cache:6380' }
  const bad: [Record<string, string>, string, RegExp][] = [
    [
      { ...rediss, REDIS_TLS_CA_FILE: '/nonexistent/ca.pem' },
      'REDIS_TLS_CA_FILE',
      /cannot be read/,
    ],
    [{ ...rediss, REDIS_TLS_CA_FILE: notPem }, 'REDIS_TLS_CA_FILE', /must be a PEM file/],
    [{ ...rediss, REDIS_TLS_CERT_FILE: certs.clientKey }, 'REDIS_TLS_CERT_FILE', /PEM file/],
    [{ ...rediss, REDIS_TLS_KEY_FILE: certs.clientCert }, 'REDIS_TLS_KEY_FILE', /PEM file/],
    [
      { ...rediss, REDIS_TLS_CERT_FILE: certs.clientCert },
      'REDIS_TLS_CERT_FILE',
      /needs REDIS_TLS_KEY_FILE/,
    ],
    [
      { ...rediss, REDIS_TLS_KEY_FILE: certs.clientKey },
      'REDIS_TLS_KEY_FILE',
      /needs REDIS_TLS_CERT_FILE/,
    ],
    [
      { REDIS_URL: 'redis://cache:6379', REDIS_TLS_CA_FILE: certs.ca },
      'REDIS_TLS_CA_FILE',
      /is for TLS connections, but REDIS_URL uses redis:\/\//,
    ],
  ]
  for (const [env, variable, message] of bad) {
    const error = thrown(() => loadConfig(env))
    const label = `${JSON.stringify(env)} → ${variable}`
    t.equal((error as ConfigError).variable, variable, label)
    t.match((error as ConfigError).message, message, label)
  }

  t.strictSame(loadConfig(rediss).redisTls, { ca: null, cert: null, key: null }, "Node's CAs")
  const mutual = loadConfig({
    ...rediss,
    REDIS_TLS_CA_FILE: certs.ca,
    REDIS_TLS_CERT_FILE: certs.clientCert,
    REDIS_TLS_KEY_FILE: certs.clientKey,
  }).redisTls
  t.equal(mutual.ca, readFileSync(certs.ca, 'utf8'))
  t.equal(mutual.cert, readFileSync(certs.clientCert, 'utf8'))
  t.equal(mutual.key, readFileSync(certs.clientKey, 'utf8'))
})
