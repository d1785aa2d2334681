import { BlockingClients } from './blocking.js'
import { type BreakerOptions, RedisBreaker } from './breaker.js'
import { closeClient } from './connection.js'
import { DeadLetterStore } from './dead-letter-store.js'
import { EventFeed } from './event-feed.js'
import { JobStore } from './job-store.js'
import { LeaseStore } from './lease-store.js'
import { QueueStore } from './queue-store.js'
import { RateLimitCounter } from './rate-limit-counter.js'
import { ScriptRunner, type StoreSettings } from './runner.js'
import type { RedisClient } from './scripts.js'

export type { StoreSettings }

export interface StoreOptions {
  settings: StoreSettings
  breaker?: BreakerOptions
  /** Connections long polls may block on; beyond them waits sleep briefly instead. */
  maxBlockingConnections?: number
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

  constructor(
    readonly client: RedisClient,
    { settings, breaker = DEFAULT_BREAKER, maxBlockingConnections = 64 }: StoreOptions,
  ) {
    this.breaker = new RedisBreaker(breaker)
    this.runner = new ScriptRunner(client, settings, this.breaker)
    this.blocking = new BlockingClients(client, maxBlockingConnections)
    this.jobs = new JobStore(this.runner)
    this.leases = new LeaseStore(this.runner, this.blocking)
    this.deadLetters = new DeadLetterStore(this.runner)
    this.queues = new QueueStore(this.runner)
    this.events = new EventFeed(this.runner, client)
    this.rateLimits = new RateLimitCounter(client, `${settings.keyPrefix}:ratelimit:`)
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
    await closeClient(this.client)
  }
}
