import {
  blockTimedOutLocally,
  closeClient,
  duplicateForBlocking,
  waitUntilReady,
} from './connection.js'
import { unavailableAsProblem } from './runner.js'
import type { RedisClient } from './scripts.js'

/** How long a waiter sleeps when every blocking connection is busy. */
const POOL_EXHAUSTED_SLEEP_MS = 250

/**
 * A bounded pool of dedicated connections on which long-polling requests block (BLPOP) for a
 * queue's wake-up tokens. When all are busy a waiter sleeps briefly instead, so the number of
 * Redis connections stays bounded however many workers long-poll.
 */
export class BlockingClients {
  private readonly idle: RedisClient[] = []
  private readonly all = new Set<RedisClient>()
  /** Set on shutdown: waits end at once and no new ones start. */
  interrupted = false

  constructor(
    private readonly source: RedisClient,
    private readonly max: number,
  ) {}

  /**
   * Waits until a wake-up token arrives on `wakeKey` or `ms` pass, or `gone` aborts (the waiter's
   * client left: its `BLPOP` ends then, rather than take the next token for nobody). A token
   * that arrives for a waiter gone or interrupted meanwhile goes back on the list, and so does
   * one for a wait cut off mid-flight, whose token may have been on its way.
   */
  async waitForWake(wakeKey: string, ms: number, gone?: AbortSignal): Promise<void> {
    if (ms <= 0 || this.interrupted || gone?.aborted) return
    const client = await this.acquire()
    if (client === null) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(ms, POOL_EXHAUSTED_SLEEP_MS)))
      return
    }
    // Gone while a new connection was being made: the abort has fired already, and nobody would
    // end a BLPOP sent now.
    if (this.interrupted || gone?.aborted) {
      this.idle.push(client)
      return
    }
    let reusable = true
    const leave = () => {
      reusable = false
      this.discard(client)
    }
    gone?.addEventListener('abort', leave, { once: true })
    try {
      const blockMs = Math.max(ms, 1)
      const sentAt = Date.now()
      const token = await unavailableAsProblem(client.blpop(wakeKey, blockMs / 1000))
      if (token !== null && (this.interrupted || gone?.aborted)) {
        await this.source.lpush(wakeKey, '1').catch(() => {})
      }
      // Possibly half open: dropped, not reconnected in place, because until ioredis sees the
      // old socket close (up to its disconnect timeout) it would write the next BLPOP there.
      if (token === null && blockTimedOutLocally(sentAt, blockMs)) reusable = false
    } catch (error) {
      if (!this.interrupted && !gone?.aborted) throw error
      // Dropped mid-wait: a token Redis already handed to this connection is lost with it, and
      // cannot be told from none. One spare token costs a waiter an empty reserve; a lost one
      // leaves a ready job unseen until some wait ends.
      await this.source.lpush(wakeKey, '1').catch(() => {})
    } finally {
      gone?.removeEventListener('abort', leave)
      if (reusable) this.idle.push(client)
      else if (this.all.has(client)) this.discard(client)
    }
  }

  private discard(client: RedisClient): void {
    this.all.delete(client)
    client.disconnect()
  }

  private async acquire(): Promise<RedisClient | null> {
    const client = this.idle.pop()
    if (client) return client
    if (this.all.size >= this.max) return null
    const created = duplicateForBlocking(this.source)
    created.on('error', () => {}) // the request path's client reports connection trouble
    this.all.add(created)
    await waitUntilReady(created, 2000)
    return created
  }

  /** Ends every wait now (their connections are dropped), for a quick shutdown. */
  interrupt(): void {
    this.interrupted = true
    for (const client of this.all) client.disconnect()
  }

  async close(): Promise<void> {
    this.interrupted = true
    await Promise.all([...this.all].map(closeClient))
    this.all.clear()
    this.idle.length = 0
  }
}
