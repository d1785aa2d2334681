import { registryKey } from './keys.js'
import { replyStrings, type ScriptRunner } from './runner.js'

/** Names this process remembers as registered; past it, the memory starts over. */
const REMEMBERED_LIMIT = 10_000
/**
 * How long a queue counts as registered before its next job registers it again: a Redis that
 * lost its data (no persistence, a flush, a failover to a replica behind) loses the registry too.
 */
const REGISTRATION_TTL_MS = 1000

/**
 * How a submission's queue stands in the registry before its enqueue script runs:
 * `known`, registered (found, or remembered from the last second); `added`, registered by this
 * submission, within MAX_QUEUES; `full`, not registered, and MAX_QUEUES are (not added).
 */
export type Admission = 'known' | 'added' | 'full'

/**
 * The set of queue names, `<prefix>:queues`: outside every queue's slot, so never written by a
 * queue's script; only its own (admit-queue, one key) and plain commands touch it. A queue is
 * added by the submission that may create its first job, before its enqueue script (so
 * MAX_QUEUES holds however many submissions race), and taken out again when it created nothing.
 */
export class QueueRegistry {
  /** Queue → when this process last added it or found it there. */
  private readonly remembered = new Map<string, number>()

  constructor(private readonly runner: ScriptRunner) {}

  private get key(): string {
    return registryKey(this.runner.settings.keyPrefix)
  }

  /** Registers the queue ahead of a submission, unless this process did within the last second. */
  async admit(queue: string): Promise<Admission> {
    if (this.fresh(queue)) return 'known'
    const [status] = replyStrings(
      await this.runner.run('admit-queue', [this.key], [queue, this.runner.settings.maxQueues]),
    )
    if (status === 'FULL') return 'full'
    this.remember(queue)
    return status === 'ADDED' ? 'added' : 'known'
  }

  /**
   * Adds the queue: its first job was just created, or a job redriven into it. The queue may be
   * gone by the time the name is added (the job ran, and a delete took the queue), so its stats
   * hash is looked for after: without it, the name is withdrawn again. Each of add and withdraw
   * looks after its write, so whichever writes last saw how the queue stands.
   */
  async add(queue: string): Promise<void> {
    await this.runner.command(() => this.runner.client.sadd(this.key, queue))
    if (await this.exists(queue)) this.remember(queue)
    else await this.withdraw(queue)
  }

  /**
   * Takes the queue out, unless a job was submitted to it meanwhile: its enqueue wrote the
   * queue's stats hash, which a deleted queue, or one whose first submission created nothing,
   * does not have.
   */
  async withdraw(queue: string): Promise<void> {
    this.forget(queue)
    await this.runner.command(() => this.runner.client.srem(this.key, queue))
    if (await this.exists(queue)) {
      await this.runner.command(() => this.runner.client.sadd(this.key, queue))
      this.remember(queue)
    }
  }

  /** Whether the queue is in use: its stats hash is written by its first job, deleted with it. */
  async exists(queue: string): Promise<boolean> {
    const { stats } = this.runner.keys(queue)
    return (await this.runner.command(() => this.runner.client.exists(stats))) === 1
  }

  /** Drops what this process remembers of the queue: its next submission asks the registry. */
  forget(queue: string): void {
    this.remembered.delete(queue)
  }

  async names(): Promise<string[]> {
    const names = await this.runner.command(() => this.runner.client.smembers(this.key))
    return names.sort()
  }

  async has(queue: string): Promise<boolean> {
    return (await this.runner.command(() => this.runner.client.sismember(this.key, queue))) === 1
  }

  private fresh(queue: string): boolean {
    return Date.now() - (this.remembered.get(queue) ?? -Infinity) < REGISTRATION_TTL_MS
  }

  private remember(queue: string): void {
    if (this.remembered.size >= REMEMBERED_LIMIT) this.remembered.clear()
    this.remembered.set(queue, Date.now())
  }
}
