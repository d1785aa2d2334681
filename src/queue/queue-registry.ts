import { registryKey } from './keys.js'
import type { ScriptRunner } from './runner.js'

/** Names this process remembers as registered; past it, the memory starts over. */
const REMEMBERED_LIMIT = 10_000
/**
 * How long a queue counts as registered before its next job registers it again: a Redis that
 * lost its data (no persistence, a flush, a failover to a replica behind) loses the registry too.
 */
const REGISTRATION_TTL_MS = 1000

/**
 * How a submission's queue stands in the registry before its enqueue script runs:
 * `known`, registered (found or remembered); `added`, registered by this submission, within
 * MAX_QUEUES; `full`, new, and adding it would pass MAX_QUEUES (it was not added).
 */
export type Admission = 'known' | 'added' | 'full'

/**
 * The set of queue names, `<prefix>:queues`: outside every queue's slot, so written with plain
 * commands, never inside a script. A queue is added by the submission that may create its first
 * job, before its enqueue script (so MAX_QUEUES holds however many submissions race), and taken
 * out again when that script created nothing.
 */
export class QueueRegistry {
  /** Queue → when this process last added it or found it there. */
  private readonly remembered = new Map<string, number>()

  constructor(private readonly runner: ScriptRunner) {}

  private get key(): string {
    return registryKey(this.runner.settings.keyPrefix)
  }

  /**
   * Registers the queue ahead of a submission, unless this process did within the last second.
   * `SADD` and `SCARD` in one transaction: of submissions racing for new queues, those that find
   * the registry past MAX_QUEUES take their name out again, so it is never passed (a race at the
   * edge may refuse one that would have fit).
   */
  async admit(queue: string): Promise<Admission> {
    if (this.fresh(queue)) return 'known'
    const replies = await this.runner.command(() =>
      this.runner.client.multi().sadd(this.key, queue).scard(this.key).exec(),
    )
    const [added, size] = (replies ?? []).map(([error, reply]) => {
      if (error) throw error
      return Number(reply)
    })
    const { maxQueues } = this.runner.settings
    if (added === 1 && maxQueues > 0 && (size ?? 0) > maxQueues) {
      await this.runner.command(() => this.runner.client.srem(this.key, queue))
      return 'full'
    }
    this.remember(queue)
    return added === 1 ? 'added' : 'known'
  }

  /** Adds the queue: its first job was just created (it may have been deleted since it was remembered). */
  async add(queue: string): Promise<void> {
    await this.runner.command(() => this.runner.client.sadd(this.key, queue))
    this.remember(queue)
  }

  /**
   * Takes the queue out, unless a job was submitted to it meanwhile: its enqueue wrote the
   * queue's stats hash, which a deleted queue, or one whose first submission created nothing,
   * does not have.
   */
  async withdraw(queue: string): Promise<void> {
    this.remembered.delete(queue)
    const { stats } = this.runner.keys(queue)
    await this.runner.command(() => this.runner.client.srem(this.key, queue))
    if ((await this.runner.command(() => this.runner.client.exists(stats))) === 1) {
      await this.add(queue)
    }
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
