import { Cluster } from 'ioredis'
import { closeClient, duplicateForWaits } from './connection.js'
import type { QueueKeys } from './keys.js'
import type { RedisClient } from './scripts.js'

/** The barrier key is a write to wait for, nothing more: it expires, so deleted queues leave none. */
const BARRIER_TTL_MS = 60_000

export interface ReplicationSettings {
  /** Replicas that must hold a write before the gateway confirms it; 0 = do not wait. */
  replicas: number
  /** The longest a confirmation waits for them, ms. */
  timeoutMs: number
}

/**
 * Holds the answer to a write until enough replicas have it (Redis `WAIT`), so that a failover
 * to a replica cannot lose what the gateway confirmed.
 *
 * `WAIT` counts only writes made on its own connection, and it blocks that connection, so it
 * runs on a connection of its own after a write there (a `SET` of the queue's `barrier` key):
 * Redis replicates in order, so a replica that has that write has every write Redis ran before
 * it, on any connection, including those whose replies the callers already hold. One `WAIT`
 * serves every caller that asked while the one before it was out (a group commit); on Redis
 * Cluster, one per queue, on the queue's shard.
 */
export class ReplicaBarrier {
  readonly client: RedisClient
  private readonly perQueue: boolean
  /** The barrier each scope's next callers join, until it is sent. */
  private readonly forming = new Map<string, Promise<number>>()
  /** The barrier of each scope out on the connection. */
  private readonly sent = new Map<string, Promise<unknown>>()

  constructor(
    source: RedisClient,
    readonly settings: ReplicationSettings,
  ) {
    this.client = duplicateForWaits(source, settings.timeoutMs)
    this.client.on('error', () => {}) // the request path's client reports connection trouble
    this.perQueue = source instanceof Cluster
  }

  /**
   * Resolves with how many replicas hold every write Redis ran before this call, once that is
   * `settings.replicas` or the timeout passed.
   */
  confirm(keys: QueueKeys): Promise<number> {
    const scope = this.perQueue ? keys.base : ''
    let barrier = this.forming.get(scope)
    if (barrier === undefined) {
      barrier = this.send(scope, keys.barrier)
      this.forming.set(scope, barrier)
    }
    return barrier
  }

  private async send(scope: string, key: string): Promise<number> {
    // A WAIT holds the connection, so one sent now would only queue behind the one out (and
    // its timer would run meanwhile): callers join this barrier until that one is back, and
    // for the rest of that turn of the event loop.
    await this.sent.get(scope)?.catch(() => undefined)
    await new Promise((resolve) => setImmediate(resolve))
    this.forming.delete(scope)
    const { replicas, timeoutMs } = this.settings
    const sent = this.client
      .pipeline()
      .set(key, '1', 'PX', BARRIER_TTL_MS)
      .wait(replicas, timeoutMs)
      .exec()
    this.sent.set(scope, sent)
    try {
      const results = (await sent) ?? []
      for (const [error] of results) if (error) throw error
      return Number(results[1]?.[1])
    } catch (error) {
      // Not even the longest WAIT takes this long: the connection may have gone silent.
      if (error instanceof Error && error.message === 'Command timed out') {
        this.client.disconnect(true)
      }
      throw error
    } finally {
      if (this.sent.get(scope) === sent) this.sent.delete(scope)
    }
  }

  /** False on Redis Cluster, where each shard has its own replicas to count. */
  get countsReplicas(): boolean {
    return !this.perQueue
  }

  close(): Promise<void> {
    return closeClient(this.client)
  }
}
