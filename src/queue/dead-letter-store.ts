import type { QueueRegistry } from './queue-registry.js'
import { decodeJob, decodePage, type JobPage, type JobRecord, type PageCursor } from './records.js'
import { replyList, replyStrings, type ScriptRunner } from './runner.js'

/** Dead jobs handled per script call when acting on the whole dead-letter set. */
const BATCH = 1000

export type DeadJobOutcome =
  /** `job`, a redrive's: the record as the redrive left it. */
  | { outcome: 'done'; count: number; job?: JobRecord | null }
  | { outcome: 'not_found' }
  | { outcome: 'not_dead'; state: string }

/** The dead-letter set of each queue: list, redrive, purge. */
export class DeadLetterStore {
  constructor(
    private readonly runner: ScriptRunner,
    private readonly registry: QueueRegistry,
  ) {}

  /**
   * One page, newest first: `offset` entries skipped from the most recent death, or from the
   * entry `after` names (a page's `next`), which stays exact while the set changes.
   */
  async list(
    queue: string,
    offset: number,
    limit: number,
    after: PageCursor | null = null,
  ): Promise<JobPage> {
    const keys = this.runner.keys(queue)
    return decodePage(
      replyList(
        await this.runner.run(
          'dead-list',
          [keys.dead],
          [
            keys.base,
            this.runner.settings.deadRetentionMs,
            offset,
            limit,
            after?.score ?? '',
            after?.id ?? '',
          ],
        ),
      ),
    )
  }

  /** One dead job back to its ready list, attempts reset. */
  redrive(queue: string, id: string): Promise<DeadJobOutcome> {
    return this.one('redrive', queue, id)
  }

  /** Every dead job of the queue, in batches (each batch atomic). */
  redriveAll(queue: string): Promise<number> {
    return this.all('redrive', queue)
  }

  purge(queue: string, id: string): Promise<DeadJobOutcome> {
    return this.one('purge', queue, id)
  }

  purgeAll(queue: string): Promise<number> {
    return this.all('purge', queue)
  }

  private async call(
    name: 'redrive' | 'purge',
    queue: string,
    id: string,
    upTo = '',
  ): Promise<string[]> {
    const keys = this.runner.keys(queue)
    const reply =
      name === 'redrive'
        ? await this.runner.run(
            'redrive',
            [keys.dead, keys.wake, keys.events, keys.stats],
            [keys.base, id, BATCH, this.runner.settings.eventsMaxLen, upTo],
          )
        : await this.runner.run('purge', [keys.dead, keys.stats], [keys.base, id, BATCH, upTo])
    const result = replyStrings(reply)
    const [status, count] = result
    if ((status === 'REDRIVEN' || status === 'PURGED') && Number(count) > 0) {
      await this.runner.confirmWrites(queue, 'Retrying it is safe.')
    }
    return result
  }

  private async one(name: 'redrive' | 'purge', queue: string, id: string): Promise<DeadJobOutcome> {
    const [status, detail, , , ...record] = await this.call(name, queue, id)
    if (status === 'NOT_FOUND') return { outcome: 'not_found' }
    if (status === 'NOT_DEAD') return { outcome: 'not_dead', state: detail ?? '' }
    if (name === 'purge') return { outcome: 'done', count: Number(detail) }
    // A record can outlive its dead-set entry (a shorter DEAD_RETENTION since it died), and so
    // the queue's delete: the job redriven now makes the queue one in use again.
    await this.registry.add(queue)
    return { outcome: 'done', count: Number(detail), job: decodeJob(record) }
  }

  /**
   * Every job dead when the first call ran: one that dies again meanwhile (redriven, and failed
   * at once) stays dead, so the loop ends however fast workers fail what it redrives.
   */
  private async all(name: 'redrive' | 'purge', queue: string): Promise<number> {
    let total = 0
    let upTo = ''
    for (;;) {
      const [, count, examined, cutoff = ''] = await this.call(name, queue, '', upTo)
      upTo = cutoff
      total += Number(count)
      // Entries of expired records are taken without counting: only a short take means the end.
      if (Number(examined) < BATCH) return total
    }
  }
}
