import { BlockingClients } from './blocking.js'
import { DeadLetterStore } from './dead-letter-store.js'
import { JobStore } from './job-store.js'
import { LeaseStore } from './lease-store.js'
import { QueueStore } from './queue-store.js'
import { ScriptRunner, type StoreSettings } from './runner.js'
import type { RedisClient } from './scripts.js'

export type { StoreSettings }

/** Everything the gateway does with Redis, by resource, over one client. */
export class Store {
  readonly jobs: JobStore
  readonly leases: LeaseStore
  readonly deadLetters: DeadLetterStore
  readonly queues: QueueStore
  private readonly runner: ScriptRunner
  private readonly blocking: BlockingClients

  constructor(
    readonly client: RedisClient,
    settings: StoreSettings,
    maxBlockingConnections = 64,
  ) {
    this.runner = new ScriptRunner(client, settings)
    this.blocking = new BlockingClients(client, maxBlockingConnections)
    this.jobs = new JobStore(this.runner)
    this.leases = new LeaseStore(this.runner, this.blocking)
    this.deadLetters = new DeadLetterStore(this.runner)
    this.queues = new QueueStore(this.runner)
  }

  async ping(): Promise<void> {
    await this.runner.command(this.client.ping())
  }

  /** Ends long polls at once (they answer "no job"): the first step of a shutdown. */
  interruptWaits(): void {
    this.blocking.interrupt()
  }

  async close(): Promise<void> {
    await this.blocking.close()
    await this.client.quit().catch(() => this.client.disconnect())
  }
}
