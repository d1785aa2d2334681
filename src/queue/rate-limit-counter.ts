import type { ScriptRunner } from './runner.js'

export interface RateLimitCount {
  /** This request's number in the window, across every gateway; above the limit = refused. */
  current: number
  /** ms left in the window. */
  ttl: number
}

export type RateLimitCallback = (error: Error | null, result?: RateLimitCount) => void

/** At most this many tokens per Redis call, and never more than 1 % of the limit. */
const MAX_CHUNK = 100
/** Clients held at most; past it, ended windows go, then the longest-held ones. */
const MAX_CLIENTS = 10_000
/** Ended windows are looked for at most this often (a scan holds the event loop). */
const SWEEP_EVERY_MS = 1000

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
 * spread over G gateways may be refused up to G × (chunk − 1) requests early. Forgetting a
 * client's window loses its tokens the same way, never admits more, so the gateway holds at
 * most `MAX_CLIENTS` however many clients (or addresses) turn up within a long window.
 * Calls go through the store's breaker: when Redis is unavailable they fail as the store's do.
 */
export class RateLimitCounter {
  private readonly windows = new Map<string, ClientWindow>()
  private sweptAt = 0

  constructor(
    private readonly runner: Pick<ScriptRunner, 'run'>,
    /** Key stem, e.g. `jobgate:ratelimit:`; the client key follows it. */
    private readonly namespace: string,
  ) {}

  /** Clients whose windows the gateway holds. */
  get size(): number {
    return this.windows.size
  }

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
    this.runner.run('rate-limit', [this.namespace + key], [windowMs, tokens]).then(
      (reply) => this.granted(window, tokens, reply),
      (error: Error) => this.failed(window, tokens, error),
    )
  }

  private windowOf(key: string, now: number): ClientWindow {
    let window = this.windows.get(key)
    if (window === undefined) {
      if (this.windows.size >= MAX_CLIENTS) this.makeRoom(now)
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

  /** Drops ended windows (at most once per `SWEEP_EVERY_MS`), then the oldest idle ones. */
  private makeRoom(now: number): void {
    if (now - this.sweptAt >= SWEEP_EVERY_MS) {
      this.sweptAt = now
      for (const [key, window] of this.windows) {
        if (window.endsAt <= now && window.incoming === 0) this.windows.delete(key)
      }
    }
    // A tenth at a time, so a flood of new clients costs a scan per thousand of them.
    const target = MAX_CLIENTS - MAX_CLIENTS / 10
    for (const [key, window] of this.windows) {
      if (this.windows.size <= target) break
      if (window.incoming === 0) this.windows.delete(key)
    }
  }
}
