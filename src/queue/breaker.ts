import CircuitBreaker from 'opossum'
import { isUnavailableError } from './connection.js'

export type BreakerState = 'closed' | 'open' | 'half_open'

export interface BreakerOptions {
  errorThresholdPercent: number
  volumeThreshold: number
  resetMs: number
  /** The rolling window failures are counted over, ms. */
  windowMs: number
}

type Call = () => Promise<unknown>

const THRESHOLD_EPSILON = 1e-9

/**
 * A circuit breaker (opossum) around the request path's Redis calls. Only availability
 * failures count (a script reply such as LEASE_LOST is an answer, not a failure), over a
 * short rolling window. Once open, calls fail at once until a trial call after `resetMs`
 * finds Redis back.
 */
export class RedisBreaker {
  private readonly breaker: CircuitBreaker<[Call], unknown>
  private openedAt = 0

  constructor(private readonly options: BreakerOptions) {
    this.breaker = new CircuitBreaker((call: Call) => call(), {
      timeout: false, // the client's command timeout bounds every call
      // opossum opens above its percentage; the setting opens at it (100 = every call failed).
      errorThresholdPercentage: options.errorThresholdPercent - THRESHOLD_EPSILON,
      volumeThreshold: options.volumeThreshold,
      resetTimeout: options.resetMs,
      rollingCountTimeout: options.windowMs,
      rollingCountBuckets: 10,
      // Latency percentiles are not used; with them on, every failure re-sorts every latency
      // of the window (thousands of calls failing at once took opossum seconds, then minutes).
      rollingPercentilesEnabled: false,
      errorFilter: (error: unknown) => !isUnavailableError(error),
    })
    this.breaker.on('open', () => {
      this.openedAt = Date.now()
    })
  }

  run<T>(call: () => Promise<T>): Promise<T> {
    return this.breaker.fire(call) as Promise<T>
  }

  get state(): BreakerState {
    if (this.breaker.opened) return 'open'
    if (this.breaker.halfOpen) return 'half_open'
    return 'closed'
  }

  /** Whole seconds until the breaker lets a trial call through (at least 1). */
  retryAfterSeconds(): number {
    if (this.state !== 'open') return 1
    return Math.max(1, Math.ceil((this.openedAt + this.options.resetMs - Date.now()) / 1000))
  }

  onStateChange(listener: (state: BreakerState) => void): void {
    this.breaker.on('open', () => listener('open'))
    this.breaker.on('halfOpen', () => listener('half_open'))
    this.breaker.on('close', () => listener('closed'))
  }

  shutdown(): void {
    this.breaker.shutdown()
  }
}

/** True for the rejection of a call the open breaker did not let through. */
export function isBreakerOpen(error: unknown): boolean {
  return (error as { code?: string } | null)?.code === 'EOPENBREAKER'
}
