import {
  blockTimedOutLocally,
  duplicateForBlocking,
  reconnect,
  waitUntilReady,
} from './connection.js'
import type { ScriptRunner } from './runner.js'
import type { RedisClient } from './scripts.js'

/** One entry of a queue's event stream: a job's state transition. */
export interface QueueEvent {
  /** The stream entry id, `<ms>-<seq>`: ordered, and the position to resume after. */
  id: string
  job: string
  state: string
  /** Redis server time of the transition, epoch ms. */
  at: number
}

/** What the stream holds right now. */
export interface StreamInfo {
  /** The id of the newest entry ever added; `0-0` for a queue without events. */
  lastId: string
  /** The oldest entry still held; null when the stream is empty. */
  firstId: string | null
  /** True when the length cap dropped entries (before Redis 7, which does not say: always). */
  trimmed: boolean
}

/** What tells whether the cap dropped entries a reader has not seen. */
export type StreamTrim = Pick<StreamInfo, 'firstId' | 'trimmed'>

/** A stream that holds nothing and dropped nothing. */
const UNTRIMMED: StreamTrim = { firstId: null, trimmed: false }

/**
 * The stream's oldest entry when the cap may have dropped entries after position `after`
 * (exclusive), else null: the cap drops the oldest entries first, so that is when the oldest
 * entry left is not the one right after the position. (Redis says how many entries were
 * dropped, not which, and its `max-deleted-entry-id` counts `XDEL`s only.)
 */
export function droppedAfter(trim: StreamTrim, after: string): string | null {
  const { firstId } = trim
  if (!trim.trimmed || firstId === null) return null
  return compareIds(after, previousId(firstId)) < 0 ? firstId : null
}

/**
 * A batch of entries, oldest first, and what the cap had dropped when they were read: entries
 * after a listener's position and before the batch are lost when `droppedAfter(trim, position)`.
 */
export type EventListener = (events: readonly QueueEvent[], trim: StreamTrim) => void

/** The start of every stream: a position before any entry. */
export const STREAM_START = '0-0'

const READ_COUNT = 500
const BLOCK_MS = 5000
/**
 * After a read that found entries, the next one waits until this long after it: under load a
 * watcher then gets a few large writes a second instead of one small write per entry or two
 * (measured in bench/RESULTS.md); an entry on a quiet stream still arrives at once.
 */
const BATCH_MS = 20
/**
 * A read on the follower's connection (not blocking: Redis answers at once) still unanswered
 * after this went to a connection that carries nothing any more; the follower replaces it.
 */
const READ_TIMEOUT_MS = 5000
const SILENT = Symbol('silent')

/** What one read of the follower brings: the new entries, and what the cap had dropped. */
interface FollowerBatch {
  events: QueueEvent[]
  trim: StreamTrim
}
const RETRY_MS = [100, 250, 500, 1000, 2000]
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Orders two stream ids (`<ms>-<seq>`); negative when `a` comes first. */
export function compareIds(a: string, b: string): number {
  const aDash = a.indexOf('-')
  const bDash = b.indexOf('-')
  return (
    Number(a.slice(0, aDash)) - Number(b.slice(0, bDash)) ||
    Number(a.slice(aDash + 1)) - Number(b.slice(bDash + 1))
  )
}

/**
 * A position just below stream id `id`, from which a read starts at `id`: the previous sequence
 * number, or the millisecond before with the largest sequence an `EventId` may carry (15
 * digits; no millisecond holds that many entries).
 */
export function previousId(id: string): string {
  const dash = id.indexOf('-')
  const ms = Number(id.slice(0, dash))
  const seq = Number(id.slice(dash + 1))
  return seq > 0 ? `${ms}-${seq - 1}` : `${ms - 1}-999999999999999`
}

/** Stream entries as ioredis returns them: `[id, [field, value, ...]]`. */
function decode(entries: [string, string[]][]): QueueEvent[] {
  return entries.map(([id, fields]) => {
    const event: QueueEvent = { id, job: '', state: '', at: 0 }
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const value = fields[i + 1] as string
      if (fields[i] === 'job') event.job = value
      else if (fields[i] === 'state') event.state = value
      else if (fields[i] === 'at') event.at = Number(value)
    }
    return event
  })
}

function infoField(flat: unknown[], name: string): unknown {
  const index = flat.indexOf(name)
  return index === -1 ? undefined : flat[index + 1]
}

/** `XINFO STREAM`'s flat answer; null for a stream that does not exist. */
function parseInfo(flat: unknown[] | null): StreamInfo {
  if (flat === null) return { ...UNTRIMMED, lastId: STREAM_START }
  const first = infoField(flat, 'first-entry') as [string, string[]] | null
  // `entries-added` is Redis 7's; without it, assume the cap may have trimmed the stream.
  const added = infoField(flat, 'entries-added')
  return {
    lastId: String(infoField(flat, 'last-generated-id')),
    firstId: first ? first[0] : null,
    trimmed: added === undefined || Number(added) > Number(infoField(flat, 'length')),
  }
}

const isNoSuchKey = (error: unknown) => error instanceof Error && /no such key/i.test(error.message)

/**
 * Follows one queue's event stream on a connection of its own (`XREAD BLOCK` holds the whole
 * connection) and hands each batch of new entries to every listener. It reads from the id it
 * last saw, so a Redis outage delays events but loses none; what the cap drops before it reads
 * is told with each batch (see `EventListener`).
 */
class StreamFollower {
  readonly listeners = new Set<EventListener>()
  private stopped = false

  constructor(
    private readonly client: RedisClient,
    private readonly key: string,
    private lastId: string,
  ) {
    void this.follow()
  }

  private async follow(): Promise<void> {
    await waitUntilReady(this.client, 2000)
    let failures = 0
    while (!this.stopped) {
      try {
        const batch = await this.readUnlessSilent()
        if (batch === SILENT) {
          // A busy queue never reaches the block below, whose timeout notices a vanished host.
          await reconnect(this.client, 5000)
          continue
        }
        const { events, trim } = batch
        failures = 0
        const last = events.at(-1)
        if (this.stopped) return
        if (last === undefined) {
          await this.waitForEntries()
          continue
        }
        this.lastId = last.id
        const readAt = Date.now()
        for (const listener of this.listeners) {
          try {
            listener(events, trim)
          } catch {
            // One watcher's failure is its own; the others still get the batch.
          }
        }
        const wait = readAt + BATCH_MS - Date.now()
        if (wait > 0) await sleep(wait)
      } catch {
        if (this.stopped) return
        // Redis is unreachable: the connection reconnects on its own; read again from lastId.
        await sleep(RETRY_MS[Math.min(failures++, RETRY_MS.length - 1)] ?? 0)
      }
    }
  }

  /** `read`, or SILENT when its reply has not come within READ_TIMEOUT_MS. */
  private async readUnlessSilent(): Promise<FollowerBatch | typeof SILENT> {
    let timer: NodeJS.Timeout | undefined
    const silent = new Promise<typeof SILENT>((resolve) => {
      timer = setTimeout(resolve, READ_TIMEOUT_MS, SILENT)
    })
    const reading = this.read()
    try {
      return await Promise.race([reading, silent])
    } finally {
      clearTimeout(timer)
      reading.catch(() => {}) // a read given up on fails when its connection is replaced
    }
  }

  /**
   * The entries after lastId and what the cap had dropped, read in one transaction: the
   * entries the cap drops between a check and a read would go unnoticed.
   */
  private async read(): Promise<FollowerBatch> {
    const replies = await this.client
      .multi()
      .xinfo('STREAM', this.key)
      .xread('COUNT', READ_COUNT, 'STREAMS', this.key, this.lastId)
      .exec()
    const [[infoError, flat] = [null, null], [readError, read] = [null, null]] = replies ?? []
    if (readError) throw readError
    if (infoError && !isNoSuchKey(infoError)) throw infoError
    const reply = read as [string, [string, string[]][]][] | null
    return {
      events: decode(reply?.[0]?.[1] ?? []),
      trim: infoError ? UNTRIMMED : parseInfo(flat as unknown[]),
    }
  }

  /**
   * Blocks until the stream has an entry after lastId. The entry itself is read again, with
   * the check, by `read`: a single command may add more entries than the cap keeps.
   */
  private async waitForEntries(): Promise<void> {
    const sentAt = Date.now()
    const reply = await this.client.xread(
      'COUNT',
      1,
      'BLOCK',
      BLOCK_MS,
      'STREAMS',
      this.key,
      this.lastId,
    )
    if (reply === null && blockTimedOutLocally(sentAt, BLOCK_MS)) await reconnect(this.client, 5000)
  }

  stop(): void {
    this.stopped = true
    this.client.disconnect()
  }
}

/**
 * The queues' event streams for watchers: reads of what a stream holds (through the breaker,
 * like every request-path call) and live followers, one per watched queue and shared by all
 * of its watchers.
 */
export class EventFeed {
  private readonly followers = new Map<string, StreamFollower>()
  private closed = false

  constructor(
    private readonly runner: ScriptRunner,
    private readonly source: RedisClient,
  ) {}

  async info(queue: string): Promise<StreamInfo> {
    const key = this.runner.keys(queue).events
    const flat = await this.runner.command(async () => {
      try {
        return (await this.runner.client.xinfo('STREAM', key)) as unknown[]
      } catch (error) {
        if (isNoSuchKey(error)) return null
        throw error
      }
    })
    return parseInfo(flat)
  }

  /**
   * Up to `count` entries after `afterId` (exclusive), oldest first, and the oldest entry the
   * stream holds (null when empty), read together: a caller paging forward sees when the cap
   * trimmed the stream past its position.
   */
  async after(
    queue: string,
    afterId: string,
    count: number,
  ): Promise<{ events: QueueEvent[]; oldestId: string | null }> {
    const key = this.runner.keys(queue).events
    // One transaction: entries the cap drops between the two reads would go unnoticed.
    const [oldest, entries] = (await this.runner.pipeline(
      (pipeline) => {
        pipeline.xrange(key, '-', '+', 'COUNT', 1)
        pipeline.xrange(key, `(${afterId}`, '+', 'COUNT', count)
      },
      { atomic: true },
    )) as [[string, string[]][], [string, string[]][]]
    return { events: decode(entries), oldestId: oldest[0]?.[0] ?? null }
  }

  /**
   * Calls `listener` with each batch of entries added to the queue's stream from now on
   * (possibly with some from shortly before: a follower reads from where it stood).
   * `fromId` is where a new follower starts. Returns the unsubscribe function.
   */
  subscribe(queue: string, fromId: string, listener: EventListener): () => void {
    if (this.closed) throw new Error('jobgate: the event feed is closed')
    let follower = this.followers.get(queue)
    if (follower === undefined) {
      const client = duplicateForBlocking(this.source)
      client.on('error', () => {}) // the request path's client reports connection trouble
      follower = new StreamFollower(client, this.runner.keys(queue).events, fromId)
      this.followers.set(queue, follower)
    }
    const subscribed = follower
    subscribed.listeners.add(listener)
    return () => {
      subscribed.listeners.delete(listener)
      if (subscribed.listeners.size > 0 || this.followers.get(queue) !== subscribed) return
      this.followers.delete(queue)
      subscribed.stop()
    }
  }

  /** Queues with a live follower (each holds one Redis connection). */
  get followedQueues(): number {
    return this.followers.size
  }

  close(): void {
    this.closed = true
    for (const follower of this.followers.values()) follower.stop()
    this.followers.clear()
  }
}
