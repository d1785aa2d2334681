import { type RedisClient, runScript } from './scripts.js'

export interface RateLimitCount {
  /** This request's number in the window, across every gateway; above the limit = refused. */
  current: number
  /** ms left in the window. */
  ttl: number
}

export type RateLimitCallback = (error: Error | null, result?: RateLimitCount) => void

/** At most this many tokens per Redis call, and never more than 1 % of the limit. */
const MAX_CHUNK = 100
const SWEEP_AT = 10_000

/** Tokens one Redis call takes: one per request (exact) up to a limit of 199 per window. */
export function chunkFor(max: number): number {
  return Math.min(MAX_CHUNK, Math.max(1, Math.floor(max / 100)))
}

interface ClientWindow {
  /** The next token to hand out, and the last one this gateway holds. */
  next: number
  last: number
  endsAt: number
  /** Requests waiting for tokens, oldest first, and how many tokens are being taken for them. */
  waiting: RateLimitCallback[]
  incoming: number
}

/**
 * Fixed-window request counters shared by every gateway through Redis (`rate-limit` script).
 * A gateway takes tokens in chunks of up to 1 % of the limit and hands them out locally, so a
 * busy client costs one Redis call per chunk, not per request. No more than the limit is ever
 * admitted per window; tokens a gateway holds unused when the window ends are lost, so a client
 * spread over G gateways may be refused up to G × (chunk − 1) requests early.
 */
export class RateLimitCounter {
  private readonly windows = new Map<string, ClientWindow>()

  constructor(
    private readonly client: RedisClient,
    /** Key stem, e.g. `jobgate:ratelimit:`; the client key follows it. */
    private readonly namespace: string,
  ) {}

  /** The signature @fastify/rate-limit calls on its store. */
  incr(key: string, callback: RateLimitCallback, windowMs: number, max: number): void {
    const now = Date.now()
    const window = this.windowOf(key, now)
    if (window.next <= window.last && now < window.endsAt) {
      callback(null, { current: window.next++, ttl: window.endsAt - now })
      return
    }
    window.waiting.push(callback)
    if (window.waiting.length <= window.incoming) return
    const tokens = chunkFor(max)
    window.incoming += tokens
    runScript(this.client, 'rate-limit', [this.namespace + key], [windowMs, tokens]).then(
      (reply) => this.granted(window, tokens, reply),
      (error: Error) => this.failed(window, tokens, error),
    )
  }

  private windowOf(key: string, now: number): ClientWindow {
    let window = this.windows.get(key)
    if (window === undefined) {
      if (this.windows.size >= SWEEP_AT) this.sweep(now)
      window = { next: 1, last: 0, endsAt: 0, waiting: [], incoming: 0 }
      this.windows.set(key, window)
    }
    return window
  }

  // Replies on one connection arrive in call order, so the oldest waiters get the oldest take.
  private granted(window: ClientWindow, tokens: number, reply: unknown): void {
    const [count, ttl] = Array.isArray(reply) ? reply : []
    if (typeof count !== 'number' || typeof ttl !== 'number') {
      this.failed(window, tokens, new Error('jobgate: unexpected rate-limit reply'))
      return
    }
    window.incoming -= tokens
    window.next = count - tokens + 1
    window.last = count
    window.endsAt = Date.now() + ttl
    for (const callback of window.waiting.splice(0, tokens)) {
      callback(null, { current: window.next++, ttl })
    }
  }

  private failed(window: ClientWindow, tokens: number, error: Error): void {
    window.incoming -= tokens
    for (const callback of window.waiting.splice(0, tokens)) callback(error)
  }

  private sweep(now: number): void {
    for (const [key, window] of this.windows) {
      if (window.endsAt <= now && window.incoming === 0) this.windows.delete(key)
    }
  }
}
