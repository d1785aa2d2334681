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
 * Cluster, one per shard, for the queues of that shard.
 */
export class ReplicaBarrier {
  readonly client: RedisClient
  private readonly onCluster: boolean
  /**
   * The barrier each scope's (the shard's, on a cluster) next callers join, until it is sent,
   * with the barrier keys it will write.
   */
  private readonly forming = new Map<string, { keys: Set<string>; replicas: Promise<number> }>()
  /** The barrier of each scope out on the connection. */
  private readonly sent = new Map<string, Promise<unknown>>()

  constructor(
    source: RedisClient,
    readonly settings: ReplicationSettings,
  ) {
    this.client = duplicateForWaits(source, settings.timeoutMs)
    this.client.on('error', () => {}) // the request path's client reports connection trouble
    this.onCluster = source instanceof Cluster
  }

  /**
   * Resolves with how many replicas hold every write Redis ran before this call, once that is
   * `settings.replicas` or the timeout passed.
   */
  confirm(keys: QueueKeys): Promise<number> {
    const scope = this.onCluster ? this.nodeOf(keys) : ''
    let barrier = this.forming.get(scope)
    if (barrier === undefined) {
      const barrierKeys = new Set<string>()
      barrier = { keys: barrierKeys, replicas: this.send(scope, barrierKeys) }
      this.forming.set(scope, barrier)
    }
    // On a cluster, each queue's own key: one whose slot moved off the node since the slots were
    // read is refused there (MOVED), failing the barrier rather than counting another node's
    // replicas for it. On one server, any key will do.
    if (this.onCluster || barrier.keys.size === 0) barrier.keys.add(keys.barrier)
    return barrier.replicas
  }

  /**
   * The master serving the queue's slot: its queues share one connection of the client, which a
   * WAIT blocks, so they share the barrier too (one WAIT on a node counts the replicas of every
   * write that node ran before it). The queue itself while the slots are not known yet.
   */
  private nodeOf(keys: QueueKeys): string {
    return (this.client as Cluster).slots[keys.slot]?.[0] ?? keys.base
  }

  private async send(scope: string, keys: ReadonlySet<string>): Promise<number> {
    // A WAIT holds the connection, so one sent now would only queue behind the one out (and
    // its timer would run meanwhile): callers join this barrier until that one is back, and
    // for the rest of that turn of the event loop.
    await this.sent.get(scope)?.catch(() => undefined)
    await new Promise((resolve) => setImmediate(resolve))
    this.forming.delete(scope)
    const { replicas, timeoutMs } = this.settings
    const pipeline = this.client.pipeline()
    for (const key of keys) pipeline.set(key, '1', 'PX', BARRIER_TTL_MS)
    const sent = pipeline.wait(replicas, timeoutMs).exec()
    this.sent.set(scope, sent)
    try {
      const results = (await sent) ?? []
      for (const [error] of results) if (error) throw error
      return Number(results.at(-1)?.[1])
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
    return !this.onCluster
  }

  close(): Promise<void> {
    return closeClient(this.client)
  }
}
