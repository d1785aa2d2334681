import { createPrivateKey, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { type ApiKey, parseApiKeys, SCOPES, type Scope } from './auth.js'

/**
 * Reads the gateway's configuration from the environment once, at boot.
 * Every variable is validated here; a bad value stops the process with a message naming it.
 */

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export interface Config {
  port: number
  host: string
  redisUrl: string
  keyPrefix: string
  logLevel: LogLevel
  /** Largest accepted request body, bytes. */
  bodyLimit: number
  /** How long an idempotency key is remembered, ms. */
  idempotencyTtlMs: number
  /** Reject job submissions that carry neither Idempotency-Key nor X-Request-ID. */
  idempotencyRequired: boolean
  /** How long succeeded, canceled and expired job records are kept, ms. */
  jobRetentionMs: number
  /** How long dead job records are kept, ms. */
  deadRetentionMs: number
  /** Queued + scheduled jobs one queue may hold before submissions get 503 (0 = no limit). */
  maxQueueDepth: number
  /** Queues the registry may hold before a new one is refused; 0 = unlimited. */
  maxQueues: number
  /** Redis connections reserved for workers long-polling over HTTP. */
  longPollConnections: number
  /** Approximate cap of each queue's event stream. */
  eventsMaxLen: number
  /** Server-Sent Events streams one gateway serves at once. */
  eventStreamsMax: number
  eventStreamsPerClient: number
  /** Comment lines sent on an idle event stream, ms apart, so proxies keep it open. */
  eventKeepAliveMs: number
  /** How long a graceful shutdown may take before the process exits anyway, ms. */
  shutdownTimeoutMs: number
  /** How long a client may take to send a whole request (headers and body). */
  requestTimeoutMs: number
  /** Redis Cluster seed nodes; null = the single Redis of `redisUrl`. */
  redisClusterNodes: HostPort[] | null
  /** A primary found through Redis Sentinel; null = the single Redis of `redisUrl`. */
  redisSentinel: SentinelSettings | null
  /** What a `rediss://` connection trusts (instead of Node's list) and shows (PEM text). */
  redisTls: RedisTls
  /** A Redis command that has not answered within this fails (and the request gets 503), ms. */
  redisCommandTimeoutMs: number
  /**
   * Replicas that must hold a producer's or operator's write before it is answered (Redis
   * `WAIT`), and the longest that waits; 0 replicas = answer once the primary has it.
   */
  redisWaitReplicas: { replicas: number; timeoutMs: number }
  breaker: BreakerSettings
  /** Keys and their scopes; empty = open (allowed on loopback or with `allowUnauthenticated`). */
  apiKeys: readonly ApiKey[]
  allowUnauthenticated: boolean
  /** Requests per window for each client and scope; null = unlimited. */
  rateLimits: Readonly<Record<Scope, RateLimit | null>>
  /**
   * Which proxies' X-Forwarded-For to believe for the client's address (Fastify's
   * `trustProxy`): false = none, a number = that many hops, a list = those addresses.
   */
  trustProxy: boolean | number | readonly string[]
}

export interface HostPort {
  host: string
  port: number
}

export interface SentinelSettings {
  sentinels: HostPort[]
  /** The master group name the sentinels monitor. */
  name: string
  /** The sentinels' own login (ACL user and password), when they require one. */
  username: string | null
  password: string | null
}

export interface RedisTls {
  /** Certificate authorities to trust instead of Node's list; null = Node's list. */
  ca: string | null
  /** A client certificate and its key, for servers that require one; null = none. */
  cert: string | null
  key: string | null
}

export interface RateLimit {
  max: number
  windowMs: number
}

export interface BreakerSettings {
  /** Share of failed Redis calls in the rolling window that opens the breaker. */
  errorThresholdPercent: number
  /**
   * The rolling window, ms: three command timeouts, so that calls slowed by a hang (each up to
   * two timeouts) are counted where they started, and the successes from before the hang leave
   * the window soon.
   */
  windowMs: number
  /** Calls in the window before the breaker may open. */
  volumeThreshold: number
  /** How long the breaker stays open before a trial call, ms. */
  resetMs: number
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`Invalid configuration: ${variable} ${message}`)
    this.name = 'ConfigError'
  }
}

type Env = Record<string, string | undefined>

const DURATION = /^(\d+)\s*(ms|s|m|h|d)?$/i
const DURATION_UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
}
const SIZE = /^(\d+)\s*(b|kb|mb)?$/i
const SIZE_UNIT: Record<string, number> = { b: 1, kb: 1024, mb: 1024 * 1024 }
const LOG_LEVELS: readonly LogLevel[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
]
export const KEY_PREFIX_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/
const SENTINEL_NAME_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/

class Reader {
  constructor(private readonly env: Env) {}

  /** The trimmed value, undefined when unset or empty. */
  optional(name: string): string | undefined {
    const value = this.env[name]?.trim()
    return value === undefined || value === '' ? undefined : value
  }

  string(name: string, fallback: string, pattern?: RegExp, hint?: string): string {
    const value = this.optional(name) ?? fallback
    if (pattern && !pattern.test(value)) {
      throw new ConfigError(name, `must match ${hint ?? pattern.source} (got "${value}")`)
    }
    return value
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const value = this.optional(name)
    if (value === undefined) return fallback
    const parsed = /^-?\d+$/.test(value) ? Number(value) : Number.NaN
    if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      throw new ConfigError(name, `must be an integer from ${min} to ${max} (got "${value}")`)
    }
    return parsed
  }

  /** A duration such as `500ms`, `30s`, `15m`, `24h`, `7d`; a bare number is milliseconds. */
  duration(name: string, fallbackMs: number, minMs: number, maxMs: number): number {
    const value = this.optional(name)
    if (value === undefined) return fallbackMs
    const match = DURATION.exec(value)
    const ms = match
      ? Number(match[1]) * (DURATION_UNIT_MS[match[2]?.toLowerCase() ?? 'ms'] ?? 1)
      : Number.NaN
    if (!Number.isSafeInteger(ms) || ms < minMs || ms > maxMs) {
      throw new ConfigError(
        name,
        `must be a duration like 500ms, 30s, 15m, 24h or 7d, from ${minMs} ms to ${maxMs} ms (got "${value}")`,
      )
    }
    return ms
  }

  /** A size such as `512kb` or `1mb`; a bare number is bytes. */
  size(name: string, fallback: number, min: number, max: number): number {
    const value = this.optional(name)
    if (value === undefined) return fallback
    const match = SIZE.exec(value)
    const bytes = match
      ? Number(match[1]) * (SIZE_UNIT[(match[2] ?? 'b').toLowerCase()] ?? 1)
      : Number.NaN
    if (!Number.isSafeInteger(bytes) || bytes < min || bytes > max) {
      throw new ConfigError(
        name,
        `must be a size like 262144, 512kb or 1mb, from ${min} to ${max} bytes (got "${value}")`,
      )
    }
    return bytes
  }

  boolean(name: string, fallback: boolean): boolean {
    const value = this.optional(name)?.toLowerCase()
    if (value === undefined) return fallback
    if (['1', 'true', 'yes', 'on'].includes(value)) return true
    if (['0', 'false', 'no', 'off'].includes(value)) return false
    throw new ConfigError(name, `must be true or false (got "${value}")`)
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const value = this.optional(name)
    if (value === undefined) return fallback
    const found = allowed.find((candidate) => candidate === value.toLowerCase())
    if (found === undefined) {
      throw new ConfigError(name, `must be one of ${allowed.join(', ')} (got "${value}")`)
    }
    return found
  }
}

const DAY = 86_400_000
const MAX_RATE_WINDOW_MS = 366 * DAY
/** `<requests>/<window>`: the window a duration (a bare number is ms) or a unit alone (`/s`). */
const RATE_LIMIT = /^(\d+)\s*\/\s*(?:(\d+)\s*(ms|s|m|h|d)?|(ms|s|m|h|d))$/

/** `localhost`, `::1` or an address of 127.0.0.0/8 (also written IPv4-mapped, `::ffff:127.…`). */
function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true
  const ipv4 = host.toLowerCase().replace(/^::ffff:/, '')
  return isIP(ipv4) === 4 && ipv4.startsWith('127.')
}

function rateLimit(read: Reader, name: string, fallback: RateLimit | null): RateLimit | null {
  const given = read.optional(name)
  if (given === undefined) return fallback
  const value = given.toLowerCase()
  if (value === 'off' || value === '0') return null
  const match = RATE_LIMIT.exec(value)
  const max = Number(match?.[1])
  const unit = match?.[3] ?? match?.[4] ?? 'ms'
  const windowMs = Number(match?.[2] ?? 1) * (DURATION_UNIT_MS[unit] ?? Number.NaN)
  if (
    !match ||
    !Number.isSafeInteger(max) ||
    max < 1 ||
    !(windowMs >= 1000 && windowMs <= MAX_RATE_WINDOW_MS)
  ) {
    throw new ConfigError(
      name,
      `must be <requests>/<window> with a window from 1s to 366d, like 1000/1s or 6000/1m, or off (got "${given}")`,
    )
  }
  return { max, windowMs }
}

/**
 * A Redis URL (or a host:port) as an error message may quote it: without its login, or a query
 * string or fragment (`?password=…`).
 */
function withoutLogin(text: string): string {
  const shown = text.replace(/([?#]).*$/s, '$1***')
  const at = shown.lastIndexOf('@')
  if (at === -1) return shown
  const scheme = shown.indexOf('//')
  const start = scheme !== -1 && scheme < at ? scheme + 2 : 0
  return `${shown.slice(0, start)}***${shown.slice(at)}`
}

const REDIS_URL_FORM = 'redis[s]://[[user]:password@]host[:port][/db]'

/**
 * `REDIS_URL`, read the way the PHP worker reads it, so one environment points both at the same
 * database with the same login: no query string (ioredis would take `?db=` and the worker not),
 * a password after a colon, percent-escapes that decode, and with a cluster only database 0.
 */
function redisUrl(read: Reader, cluster: boolean): string {
  const value = read.optional('REDIS_URL') ?? 'redis://127.0.0.1:6379'
  const fail = (problem: string): never => {
    throw new ConfigError('REDIS_URL', `${problem} (got "${withoutLogin(value)}")`)
  }
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return fail(`must be a URL, ${REDIS_URL_FORM}, such as redis://127.0.0.1:6379`)
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    fail('must use redis: or rediss:')
  }
  if (/[?#]/.test(value)) {
    fail('takes no query string or fragment: name the database in the path, as in /2')
  }
  // Port 0 names no server; the Redis clients would take it for the default, 6379.
  if (url.port === '0') fail('must name a port from 1 to 65535, or none for 6379')
  if (url.username !== '' && url.password === '') {
    fail(
      'has a user without a password: write the password after a colon, as in redis://:password@host or redis://user:password@host',
    )
  }
  try {
    decodeURIComponent(url.username)
    decodeURIComponent(url.password)
  } catch {
    fail('has a login that is not valid percent-encoding: write a % in the password as %25')
  }
  const database = /^\/?(\d{1,5})?$/.exec(url.pathname)
  if (database === null) fail('must name its database by number, as in /2')
  if (cluster && Number(database?.[1] ?? 0) !== 0) {
    fail('names a database other than 0, which a Redis Cluster (REDIS_CLUSTER_NODES) does not have')
  }
  return value
}

function hostPorts(read: Reader, variable: string): HostPort[] | null {
  const value = read.optional(variable)
  if (value === undefined) return null
  return value.split(',').map((node) => {
    // A login or scheme here would be taken for part of a host name; they come from REDIS_URL.
    const match = /^\[?([^\]\s/@]+?)\]?:(\d{1,5})$/.exec(node.trim())
    const port = Number(match?.[2])
    if (!match?.[1] || port < 1 || port > 65535) {
      throw new ConfigError(
        variable,
        `must be host:port pairs separated by commas (got "${withoutLogin(node)}")`,
      )
    }
    return { host: match[1], port }
  })
}

function sentinel(read: Reader, clusterNodes: HostPort[] | null): SentinelSettings | null {
  const sentinels = hostPorts(read, 'REDIS_SENTINELS')
  const name = read.optional('REDIS_SENTINEL_NAME')
  const username = read.optional('REDIS_SENTINEL_USERNAME') ?? null
  const password = read.optional('REDIS_SENTINEL_PASSWORD') ?? null
  if (sentinels === null) {
    if (name !== undefined) throw new ConfigError('REDIS_SENTINEL_NAME', 'needs REDIS_SENTINELS')
    if (username !== null) throw new ConfigError('REDIS_SENTINEL_USERNAME', 'needs REDIS_SENTINELS')
    if (password !== null) throw new ConfigError('REDIS_SENTINEL_PASSWORD', 'needs REDIS_SENTINELS')
    return null
  }
  if (username !== null && password === null) {
    throw new ConfigError(
      'REDIS_SENTINEL_USERNAME',
      'needs REDIS_SENTINEL_PASSWORD: an ACL user logs in with a password',
    )
  }
  if (clusterNodes !== null) {
    throw new ConfigError(
      'REDIS_SENTINELS',
      'cannot be set with REDIS_CLUSTER_NODES: a Redis Cluster fails over by itself',
    )
  }
  if (name === undefined || !SENTINEL_NAME_PATTERN.test(name)) {
    throw new ConfigError(
      'REDIS_SENTINEL_NAME',
      `must name the master group the sentinels monitor, [A-Za-z0-9_.:-]{1,128} (got ${name === undefined ? 'nothing' : `"${name}"`})`,
    )
  }
  return { sentinels, name, username, password }
}

function pemFile(read: Reader, variable: string, check: (pem: string) => unknown): string | null {
  const file = read.optional(variable)
  if (file === undefined) return null
  let pem: string
  try {
    pem = readFileSync(file, 'utf8')
  } catch (error) {
    throw new ConfigError(variable, `cannot be read: ${(error as Error).message}`)
  }
  try {
    check(pem)
  } catch (error) {
    throw new ConfigError(variable, `must be a PEM file (${file}: ${(error as Error).message})`)
  }
  return pem
}

/** The TLS material for `rediss://`: every file read and parsed now, not at the first connect. */
function redisTls(read: Reader, url: string): RedisTls {
  const tls = {
    ca: pemFile(read, 'REDIS_TLS_CA_FILE', (pem) => new X509Certificate(pem)),
    cert: pemFile(read, 'REDIS_TLS_CERT_FILE', (pem) => new X509Certificate(pem)),
    key: pemFile(read, 'REDIS_TLS_KEY_FILE', (pem) => createPrivateKey(pem)),
  }
  if ((tls.cert === null) !== (tls.key === null)) {
    const [given, missing] =
      tls.cert === null
        ? ['REDIS_TLS_KEY_FILE', 'REDIS_TLS_CERT_FILE']
        : ['REDIS_TLS_CERT_FILE', 'REDIS_TLS_KEY_FILE']
    throw new ConfigError(given, `needs ${missing}: a client certificate goes with its key`)
  }
  const given = Object.entries(tls).find(([, pem]) => pem !== null)
  if (given && new URL(url).protocol !== 'rediss:') {
    throw new ConfigError(
      `REDIS_TLS_${given[0].toUpperCase()}_FILE`,
      `is for TLS connections, but REDIS_URL uses redis:// (use rediss:// to connect over TLS)`,
    )
  }
  return tls
}

function apiKeys(read: Reader): ApiKey[] {
  const keys: ApiKey[] = []
  const inline = read.optional('API_KEYS')
  const file = read.optional('API_KEYS_FILE')
  try {
    if (inline !== undefined) keys.push(...parseApiKeys(inline))
  } catch (error) {
    throw new ConfigError('API_KEYS', (error as Error).message)
  }
  if (inline !== undefined && keys.length === 0) throw noKeysIn('API_KEYS')
  if (file !== undefined) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (error) {
      throw new ConfigError('API_KEYS_FILE', `cannot be read: ${(error as Error).message}`)
    }
    let found: ApiKey[]
    try {
      found = parseApiKeys(text, keys)
    } catch (error) {
      throw new ConfigError('API_KEYS_FILE', (error as Error).message)
    }
    if (found.length === 0) throw noKeysIn('API_KEYS_FILE', file)
    keys.push(...found)
  }
  return keys
}

/** The API keys API_KEYS and API_KEYS_FILE name now (read again on SIGHUP). */
export function loadApiKeys(env: Env = process.env): ApiKey[] {
  return apiKeys(new Reader(env))
}

// Keys asked for but none found (an empty or all-commented source) would run the gateway open.
function noKeysIn(name: 'API_KEYS' | 'API_KEYS_FILE', file?: string): ConfigError {
  const source = file === undefined ? '' : ` (${file})`
  return new ConfigError(
    name,
    `holds no key entries${source}: a gateway told to use keys would run open. Add entries, or unset ${name} to run without keys.`,
  )
}

export function loadConfig(env: Env = process.env): Config {
  const read = new Reader(env)
  const idempotencyTtlMs = read.duration('IDEMPOTENCY_TTL', DAY, 1000, 30 * DAY)
  const jobRetentionMs = read.duration('JOB_RETENTION', DAY, 1000, 365 * DAY)
  if (jobRetentionMs < idempotencyTtlMs) {
    // A replayed key must always find its job; a shorter retention would let a key outlive it.
    throw new ConfigError(
      'JOB_RETENTION',
      `must be at least IDEMPOTENCY_TTL (${idempotencyTtlMs} ms), so a replayed key always finds its job (got ${jobRetentionMs} ms)`,
    )
  }
  const deadRetentionMs = read.duration('DEAD_RETENTION', 7 * DAY, 1000, 365 * DAY)
  if (deadRetentionMs < idempotencyTtlMs) {
    throw new ConfigError(
      'DEAD_RETENTION',
      `must be at least IDEMPOTENCY_TTL (${idempotencyTtlMs} ms), so a replayed key always finds its job, dead or not (got ${deadRetentionMs} ms)`,
    )
  }
  const host = read.string('HOST', '127.0.0.1')
  if (/^\[.*\]$/.test(host)) {
    throw new ConfigError(
      'HOST',
      `is an address, not a URL: write it without brackets (got "${host}")`,
    )
  }
  const keys = apiKeys(read)
  const allowUnauthenticated = read.boolean('ALLOW_UNAUTHENTICATED', false)
  if (keys.length === 0 && !isLoopback(host) && !allowUnauthenticated) {
    throw new ConfigError(
      'API_KEYS',
      `must be set when HOST is not a loopback address (HOST is ${host}): without keys anyone who can reach the gateway can use it. Set API_KEYS or API_KEYS_FILE, or ALLOW_UNAUTHENTICATED=true to accept that.`,
    )
  }
  const defaultLimit = rateLimit(read, 'RATE_LIMIT', { max: 1000, windowMs: 1000 })
  const rateLimits = Object.fromEntries(
    SCOPES.map((scope) => [
      scope,
      rateLimit(read, `RATE_LIMIT_${scope.toUpperCase()}`, defaultLimit),
    ]),
  ) as Record<Scope, RateLimit | null>
  const commandTimeoutMs = read.duration('REDIS_COMMAND_TIMEOUT', 1000, 50, 60_000)
  const redisClusterNodes = hostPorts(read, 'REDIS_CLUSTER_NODES')
  const url = redisUrl(read, redisClusterNodes !== null)
  return Object.freeze({
    port: read.integer('PORT', 3000, 0, 65535),
    host,
    redisUrl: url,
    keyPrefix: read.string('KEY_PREFIX', 'jobgate', KEY_PREFIX_PATTERN, '[A-Za-z0-9_.-]{1,64}'),
    logLevel: read.oneOf('LOG_LEVEL', 'info', LOG_LEVELS),
    bodyLimit: read.size('BODY_LIMIT', 1024 * 1024, 1024, 64 * 1024 * 1024),
    idempotencyTtlMs,
    idempotencyRequired: read.boolean('IDEMPOTENCY_REQUIRED', false),
    jobRetentionMs,
    deadRetentionMs,
    maxQueueDepth: read.integer('MAX_QUEUE_DEPTH', 1_000_000, 0, 1_000_000_000),
    maxQueues: read.integer('MAX_QUEUES', 10_000, 0, 10_000_000),
    longPollConnections: read.integer('LONG_POLL_CONNECTIONS', 64, 1, 10_000),
    eventsMaxLen: read.integer('EVENTS_MAX_LEN', 10_000, 100, 10_000_000),
    eventStreamsMax: read.integer('EVENT_STREAMS_MAX', 1000, 1, 100_000),
    eventStreamsPerClient: read.integer('EVENT_STREAMS_PER_CLIENT', 100, 1, 100_000),
    eventKeepAliveMs: read.duration('EVENT_KEEPALIVE', 15_000, 100, 10 * 60_000),
    shutdownTimeoutMs: read.duration('SHUTDOWN_TIMEOUT', 10_000, 100, 10 * 60_000),
    requestTimeoutMs: read.duration('REQUEST_TIMEOUT', 30_000, 1000, 60 * 60_000),
    redisClusterNodes,
    redisSentinel: sentinel(read, redisClusterNodes),
    redisTls: Object.freeze(redisTls(read, url)),
    redisCommandTimeoutMs: commandTimeoutMs,
    redisWaitReplicas: {
      replicas: read.integer('REDIS_WAIT_REPLICAS', 0, 0, 100),
      timeoutMs: read.duration('REDIS_WAIT_TIMEOUT', 500, 1, 60_000),
    },
    breaker: {
      errorThresholdPercent: read.integer('BREAKER_ERROR_PERCENT', 50, 1, 100),
      volumeThreshold: read.integer('BREAKER_VOLUME', 5, 1, 100_000),
      resetMs: read.duration('BREAKER_RESET', 2000, 100, 600_000),
      windowMs: Math.max(1000, 3 * commandTimeoutMs),
    },
    apiKeys: Object.freeze(keys),
    allowUnauthenticated,
    rateLimits: Object.freeze(rateLimits),
    trustProxy: trustProxy(read),
  })
}

/** proxy-addr's names for address ranges, accepted beside addresses and CIDR blocks. */
const PROXY_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal'])

function trustProxy(read: Reader): boolean | number | readonly string[] {
  const value = read.optional('TRUST_PROXY')
  if (value === undefined) return false
  const lower = value.toLowerCase()
  if (['false', 'no', 'off'].includes(lower)) return false
  if (['true', 'yes', 'on'].includes(lower)) return true
  if (/^\d+$/.test(value)) return read.integer('TRUST_PROXY', 0, 0, 32) || false
  const entries = value.split(',').map((entry) => entry.trim())
  for (const entry of entries) {
    if (PROXY_RANGES.has(entry.toLowerCase())) continue
    const [address = '', prefix, ...rest] = entry.split('/')
    const version = isIP(address)
    const bits = version === 6 ? 128 : 32
    const validPrefix = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits)
    if (version === 0 || !validPrefix || rest.length > 0) {
      throw new ConfigError(
        'TRUST_PROXY',
        `must be true, false, a number of proxy hops (0 to 32), or proxy addresses: IPs, CIDR blocks or loopback, linklocal, uniquelocal, comma-separated (got "${entry}")`,
      )
    }
  }
  return Object.freeze(entries.map((entry) => entry.toLowerCase()))
}
