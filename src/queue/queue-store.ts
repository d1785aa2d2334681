import type { QueueRegistry } from './queue-registry.js'
import { replyList, replyStrings, type ScriptRunner } from './runner.js'

export interface QueueCounts {
  name: string
  /** Redis server time of the reading, epoch ms. */
  now: number
  queued: number
  scheduled: number
  active: number
  dead: number
  oldestQueuedAt: number | null
  /** When the queue was paused (epoch ms); null while it runs. */
  pausedAt: number | null
  /** Running totals since the queue's first job. */
  totals: Record<string, number>
  /** Per-minute counters of the current and the previous minute. */
  thisMinute: Record<string, number>
  lastMinute: Record<string, number>
}

export interface QueuePage {
  /** Queues in all. */
  total: number
  /** The position of the page's first queue among all of them. */
  start: number
  counts: QueueCounts[]
  /** Whether queues follow the page. */
  more: boolean
}

export type DeleteQueueResult =
  | { outcome: 'deleted' }
  | { outcome: 'not_empty'; counts: Pick<QueueCounts, 'queued' | 'scheduled' | 'active' | 'dead'> }

function numbers(flat: string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = Number(flat[i + 1])
  return out
}

/** Queues counted at once when reading them all: bounds the calls one reading has in flight. */
const COUNTS_AT_ONCE = 100

/** The registry of queues and each queue's counts. */
export class QueueStore {
  /** The reading of every queue in progress, shared by whoever asks meanwhile. */
  private reading: Promise<QueueCounts[]> | null = null

  constructor(
    private readonly runner: ScriptRunner,
    private readonly registry: QueueRegistry,
  ) {}

  /**
   * Every queue's counts, in name order. Callers that ask while a reading is in progress share
   * it: dashboards polling thousands of queues at once cost Redis one reading, not one each.
   */
  allCounts(): Promise<QueueCounts[]> {
    this.reading ??= (async () => this.countsOf(await this.names()))().finally(() => {
      this.reading = null
    })
    return this.reading
  }

  /**
   * A page of queues in name order: `limit` of them, `offset` past the first (or, with `after`,
   * past the first name that sorts after it, whether or not that queue exists); where the page
   * starts among all of them, and how many there are.
   */
  async page(offset: number, limit: number, after: string | null = null): Promise<QueuePage> {
    const names = await this.names()
    const start = (after === null ? 0 : names.filter((name) => name <= after).length) + offset
    const onPage = names.slice(start, start + limit)
    return {
      total: names.length,
      start,
      counts: await this.countsOf(onPage),
      more: start + onPage.length < names.length,
    }
  }

  private async countsOf(names: readonly string[]): Promise<QueueCounts[]> {
    const counts: QueueCounts[] = []
    for (let start = 0; start < names.length; start += COUNTS_AT_ONCE) {
      const chunk = names.slice(start, start + COUNTS_AT_ONCE)
      counts.push(...(await Promise.all(chunk.map((name) => this.counts(name)))))
    }
    return counts
  }

  names(): Promise<string[]> {
    return this.registry.names()
  }

  /**
   * Whether the queue is in use: registered, or holding its stats hash though the registry lost
   * its name (the registry's shard failed over to a replica behind, or came back empty), which
   * is then registered again rather than the queue answered as unknown until its next job.
   */
  async exists(queue: string): Promise<boolean> {
    if (await this.registry.has(queue)) return true
    if (!(await this.registry.exists(queue))) return false
    await this.registry.add(queue)
    return true
  }

  async counts(queue: string): Promise<QueueCounts> {
    const keys = this.runner.keys(queue)
    const [, now, queued, scheduled, active, dead, oldest, totals, thisMinute, lastMinute, paused] =
      replyList(
        await this.runner.run(
          'counts',
          [keys.scheduled, keys.active, keys.dead, keys.stats],
          [keys.base, this.runner.settings.deadRetentionMs],
        ),
      )
    return {
      name: queue,
      now: Number(now),
      queued: Number(queued),
      scheduled: Number(scheduled),
      active: Number(active),
      dead: Number(dead),
      oldestQueuedAt: oldest === '' ? null : Number(oldest),
      pausedAt: paused === '' ? null : Number(paused),
      totals: numbers(replyStrings(totals)),
      thisMinute: numbers(replyStrings(thisMinute)),
      lastMinute: numbers(replyStrings(lastMinute)),
    }
  }

  /**
   * Holds back (`pause`) or releases (`resume`) the delivery of the queue's jobs; either is a
   * no-op when already done. False when there is no such queue to pause (deleted meanwhile).
   */
  async setPaused(queue: string, paused: boolean): Promise<boolean> {
    const keys = this.runner.keys(queue)
    const [status] = replyStrings(
      await this.runner.run(
        'pause',
        [keys.paused, keys.wake, keys.scheduled, keys.active, keys.stats],
        [keys.base, paused ? 'pause' : 'resume'],
      ),
    )
    if (status === 'NOT_FOUND') return false
    await this.runner.confirmWrites(queue, 'Repeating it is safe.')
    return true
  }

  /**
   * Removes a queue that holds no job (none queued, scheduled, active or dead): its counters,
   * event history and pause flag, and its name from the registry. A job submitted meanwhile
   * keeps the queue listed (see QueueRegistry.withdraw, and the enqueue script's `first`).
   */
  async delete(queue: string): Promise<DeleteQueueResult> {
    const keys = this.runner.keys(queue)
    const [status, queued, scheduled, active, dead] = replyStrings(
      await this.runner.run(
        'delete-queue',
        [keys.scheduled, keys.active, keys.dead, keys.stats, keys.events, keys.wake, keys.paused],
        [keys.base, this.runner.settings.deadRetentionMs],
      ),
    )
    if (status === 'NOT_EMPTY') {
      return {
        outcome: 'not_empty',
        counts: {
          queued: Number(queued),
          scheduled: Number(scheduled),
          active: Number(active),
          dead: Number(dead),
        },
      }
    }
    await this.registry.withdraw(queue)
    await this.runner.confirmWrites(queue, 'Repeating it is safe: a 404 then means it is deleted.')
    return { outcome: 'deleted' }
  }
}
