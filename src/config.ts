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
  /** Redis connections reserved for workers long-polling over HTTP. */
  longPollConnections: number
  /** Approximate cap of each queue's event stream. */
  eventsMaxLen: number
  /** How long a graceful shutdown may take before the process exits anyway, ms. */
  shutdownTimeoutMs: number
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

const DURATION = /^(\d+)\s*(ms|s|m|h|d)?$/
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

class Reader {
  constructor(private readonly env: Env) {}

  private raw(name: string): string | undefined {
    const value = this.env[name]?.trim()
    return value === undefined || value === '' ? undefined : value
  }

  string(name: string, fallback: string, pattern?: RegExp, hint?: string): string {
    const value = this.raw(name) ?? fallback
    if (pattern && !pattern.test(value)) {
      throw new ConfigError(name, `must match ${hint ?? pattern.source} (got "${value}")`)
    }
    return value
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name)
    if (value === undefined) return fallback
    const parsed = /^-?\d+$/.test(value) ? Number(value) : Number.NaN
    if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      throw new ConfigError(name, `must be an integer from ${min} to ${max} (got "${value}")`)
    }
    return parsed
  }

  /** A duration such as `500ms`, `30s`, `15m`, `24h`, `7d`; a bare number is milliseconds. */
  duration(name: string, fallbackMs: number, minMs: number, maxMs: number): number {
    const value = this.raw(name)
    if (value === undefined) return fallbackMs
    const match = DURATION.exec(value)
    const ms = match ? Number(match[1]) * (DURATION_UNIT_MS[match[2] ?? 'ms'] ?? 1) : Number.NaN
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
    const value = this.raw(name)
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
    const value = this.raw(name)?.toLowerCase()
    if (value === undefined) return fallback
    if (['1', 'true', 'yes', 'on'].includes(value)) return true
    if (['0', 'false', 'no', 'off'].includes(value)) return false
    throw new ConfigError(name, `must be true or false (got "${value}")`)
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const value = this.raw(name)
    if (value === undefined) return fallback
    const found = allowed.find((candidate) => candidate === value.toLowerCase())
    if (found === undefined) {
      throw new ConfigError(name, `must be one of ${allowed.join(', ')} (got "${value}")`)
    }
    return found
  }

  url(name: string, fallback: string, protocols: readonly string[]): string {
    const value = this.raw(name) ?? fallback
    let protocol: string
    try {
      protocol = new URL(value).protocol
    } catch {
      throw new ConfigError(name, `must be a URL such as redis://127.0.0.1:6379 (got "${value}")`)
    }
    if (!protocols.includes(protocol)) {
      throw new ConfigError(name, `must use one of ${protocols.join(', ')} (got "${value}")`)
    }
    return value
  }
}

const DAY = 86_400_000

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
  return Object.freeze({
    port: read.integer('PORT', 3000, 0, 65535),
    host: read.string('HOST', '127.0.0.1'),
    redisUrl: read.url('REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']),
    keyPrefix: read.string('KEY_PREFIX', 'jobgate', KEY_PREFIX_PATTERN, '[A-Za-z0-9_.-]{1,64}'),
    logLevel: read.oneOf('LOG_LEVEL', 'info', LOG_LEVELS),
    bodyLimit: read.size('BODY_LIMIT', 1024 * 1024, 1024, 64 * 1024 * 1024),
    idempotencyTtlMs,
    idempotencyRequired: read.boolean('IDEMPOTENCY_REQUIRED', false),
    jobRetentionMs,
    deadRetentionMs: read.duration('DEAD_RETENTION', 7 * DAY, 1000, 365 * DAY),
    maxQueueDepth: read.integer('MAX_QUEUE_DEPTH', 1_000_000, 0, 1_000_000_000),
    longPollConnections: read.integer('LONG_POLL_CONNECTIONS', 64, 1, 10_000),
    eventsMaxLen: read.integer('EVENTS_MAX_LEN', 10_000, 100, 10_000_000),
    shutdownTimeoutMs: read.duration('SHUTDOWN_TIMEOUT', 10_000, 0, 10 * 60_000),
  })
}
