import { Cluster, type Redis } from 'ioredis'
import { BlockingClients } from './blocking.js'
import { type BreakerOptions, RedisBreaker } from './breaker.js'
import { closeClient, waitUntilReady } from './connection.js'
import { DeadLetterStore } from './dead-letter-store.js'
import { EventFeed } from './event-feed.js'
import { JobStore } from './job-store.js'
import { LeaseStore } from './lease-store.js'
import { QueueRegistry } from './queue-registry.js'
import { QueueStore } from './queue-store.js'
import { RateLimitCounter } from './rate-limit-counter.js'
import { ReplicaBarrier, type ReplicationSettings } from './replica-barrier.js'
import { ScriptRunner, type StoreSettings } from './runner.js'
import type { RedisClient } from './scripts.js'

export type { ReplicationSettings, StoreSettings }

export interface StoreOptions {
  settings: StoreSettings
  breaker?: BreakerOptions
  /** Connections long polls may block on; beyond them waits sleep briefly instead. */
  maxBlockingConnections?: number
  /** Confirm producers' and operators' writes on replicas before answering. */
  replication?: ReplicationSettings
}

const DEFAULT_BREAKER: BreakerOptions = {
  errorThresholdPercent: 50,
  volumeThreshold: 5,
  resetMs: 2000,
  windowMs: 3000,
}

/** Everything the gateway does with Redis, by resource, over one client. */
export class Store {
  readonly jobs: JobStore
  readonly leases: LeaseStore
  readonly deadLetters: DeadLetterStore
  readonly queues: QueueStore
  /** The queues' event streams, read and followed for watchers. */
  readonly events: EventFeed
  /** Request counters of the rate limits, shared with other gateways. */
  readonly rateLimits: RateLimitCounter
  /** Guards every request-path call; its state is the store's health. */
  readonly breaker: RedisBreaker
  private readonly runner: ScriptRunner
  private readonly blocking: BlockingClients
  private readonly barrier: ReplicaBarrier | null

  constructor(
    readonly client: RedisClient,
    {
      settings,
      breaker = DEFAULT_BREAKER,
      maxBlockingConnections = 64,
      replication = { replicas: 0, timeoutMs: 0 },
    }: StoreOptions,
  ) {
    this.breaker = new RedisBreaker(breaker)
    this.barrier = replication.replicas > 0 ? new ReplicaBarrier(client, replication) : null
    this.runner = new ScriptRunner(client, settings, this.breaker, this.barrier)
    this.blocking = new BlockingClients(client, maxBlockingConnections)
    const registry = new QueueRegistry(this.runner)
    this.jobs = new JobStore(this.runner, registry)
    this.leases = new LeaseStore(this.runner, this.blocking)
    this.deadLetters = new DeadLetterStore(this.runner, registry)
    this.queues = new QueueStore(this.runner, registry)
    this.events = new EventFeed(this.runner, client)
    this.rateLimits = new RateLimitCounter(this.runner, `${settings.keyPrefix}:ratelimit:`)
  }

  /** Resolves once the store's connections are ready, or after `timeoutMs`; reports which. */
  async waitUntilReady(timeoutMs: number): Promise<boolean> {
    const ready = await Promise.all(
      [this.client, this.barrier?.client]
        .filter((client) => client !== undefined)
        .map((client) => waitUntilReady(client, timeoutMs)),
    )
    return ready.every(Boolean)
  }

  /** Replicas every producer's or operator's write waits for (REDIS_WAIT_REPLICAS); 0 = none. */
  get replicasRequired(): number {
    return this.barrier?.settings.replicas ?? 0
  }

  /** True when replicas() can tell: writes wait for replicas, and Redis is not a Cluster. */
  get countsReplicas(): boolean {
    return this.barrier?.countsReplicas ?? false
  }

  /**
   * How many replicas the primary has online against how many writes wait for; null when
   * writes wait for none, or on Redis Cluster.
   */
  async replicas(): Promise<{ online: number; required: number } | null> {
    const barrier = this.barrier
    if (barrier === null || !barrier.countsReplicas) return null
    // On the request path's connection: the barrier's holds a WAIT for up to its timeout.
    const info = await this.runner.command(() => (this.client as Redis).info('replication'))
    return { online: info.match(/state=online/g)?.length ?? 0, required: barrier.settings.replicas }
  }

  /**
   * The eviction policies of the Redis that hold the jobs (each master of a cluster), as
   * `INFO memory` names them: anything but `noeviction` lets Redis drop job and idempotency
   * records when it fills up.
   */
  async evictionPolicies(): Promise<string[]> {
    const servers = this.client instanceof Cluster ? this.client.nodes('master') : [this.client]
    const infos = await Promise.all(
      servers.map((server) => this.runner.command(() => server.info('memory'))),
    )
    const policies = infos.map((info) => /^maxmemory_policy:(\S+)/m.exec(info)?.[1])
    return [...new Set(policies.filter((policy) => policy !== undefined))]
  }

  async ping(): Promise<void> {
    await this.runner.command(() => this.client.ping())
  }

  /** Ends long polls at once (they answer "no job"): the first step of a shutdown. */
  interruptWaits(): void {
    this.blocking.interrupt()
    this.events.close()
  }

  async close(): Promise<void> {
    this.breaker.shutdown()
    this.events.close()
    await this.blocking.close()
    await this.barrier?.close()
    await closeClient(this.client)
  }
}
