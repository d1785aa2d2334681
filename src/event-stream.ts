import { PassThrough } from 'node:stream'
import { iso } from './job-view.js'
import {
  compareIds,
  droppedAfter,
  type EventFeed,
  previousId,
  type QueueEvent,
  STREAM_START,
  type StreamTrim,
} from './queue/event-feed.js'
import { isFinal } from './queue/records.js'

/**
 * One watcher's Server-Sent Events stream of a queue's state transitions: the entries after
 * its start position first, then live ones as they are added. Each event's `id` is the stream
 * entry id, so a client that reconnects with `Last-Event-ID` resumes exactly after the last
 * event it saw.
 */

/** How long a client waits before it reconnects after the stream ends, ms. */
export const RECONNECT_MS = 2000

const PAGE = 500
/** A watcher this far behind is cut off; it reconnects and resumes from its last event. */
const MAX_BUFFERED_BYTES = 1024 * 1024
/** Live entries held for a watcher still catching up, at most (about half the bytes above). */
const MAX_HELD = 4000
/** A catch-up that waits longer than this for its client to read is cut off. */
export const STALL_MS = 30_000

export interface EventStreamOptions {
  queue: string
  /** Only this job's transitions; the stream ends after its final state. */
  job: string | null
  /**
   * With `job`: where its final transition can be, no earlier than `at` (epoch ms) and, with
   * `afterId`, after that stream entry. An older one (a death the job was redriven from) does
   * not end the stream.
   */
  final?: { at: number; afterId: string | null }
  /** The stream entry id to start after (exclusive). */
  after: string
  /** The newest entry when the watcher connected: live reading starts there, the catch-up before. */
  newest: string
  /** Entries after `after` may have been dropped by the length cap: a gap event names this one. */
  gapBefore: string | null
  /**
   * What `gapBefore` was judged on: the stream's oldest entry then, and the position before
   * which nothing could be lost. The cap may trim more before the first page is read.
   */
  gapCheck?: { oldest: string | null; from: string }
  keepAliveMs: number
  /**
   * With `job`: whether the job is final (or gone) now. Asked after a gap, which may have
   * dropped its final transition: then the stream ends, and a client that reconnects after the
   * gap is answered from the job's state (`204` when nothing is left to send).
   */
  jobOver?: () => Promise<boolean>
  /** How long a catch-up waits for its client to read a full buffer; default STALL_MS. */
  stallMs?: number
  /** Drops the connection: how a watcher that fell behind is cut off. */
  abort: () => void
  /** Called once, when the stream ends for any reason. */
  onEnd: () => void
}

/** The JSON of one transition, as the `QueueEvent` schema of openapi.yaml describes it. */
function eventData(queue: string, event: QueueEvent): string {
  return JSON.stringify({ queue, job: event.job, state: event.state, at: iso(event.at) })
}

// Every watcher of a queue receives the same entries, as the same objects: each entry's event
// text, and a whole batch's bytes, are made once however many watchers write them.
const frames = new WeakMap<QueueEvent, string>()
const batches = new WeakMap<readonly QueueEvent[], Buffer>()

function frameOf(queue: string, event: QueueEvent): string {
  let frame = frames.get(event)
  if (frame === undefined) {
    frame = `id: ${event.id}\ndata: ${eventData(queue, event)}\n\n`
    frames.set(event, frame)
  }
  return frame
}

function batchOf(queue: string, events: readonly QueueEvent[]): Buffer {
  let bytes = batches.get(events)
  if (bytes === undefined) {
    bytes = Buffer.from(events.map((event) => frameOf(queue, event)).join(''))
    batches.set(events, bytes)
  }
  return bytes
}

export class EventStream {
  /** The response body: `text/event-stream`. */
  readonly body = new PassThrough()
  private position: string
  /** Live entries held back while the catch-up runs; null once live. */
  private held: QueueEvent[] | null = []
  /** What the cap had dropped when the newest held entries were read. */
  private heldTrim: StreamTrim | null = null
  private unsubscribe: () => void = () => {}
  private keepAlive: NodeJS.Timeout | null = null
  private ended = false
  /** A check whether the watched job is over runs (see `jobOver`). */
  private checking = false
  /** Ends a wait for the client to read, when the stream ends instead. */
  private stopWaiting: (() => void) | null = null
  private lastWriteAt = 0
  /** The catch-up's first page was read. */
  private paged = false
  /** Events written so far. */
  emitted = 0
  /** A gap event was written. */
  gapped = false

  constructor(
    private readonly feed: EventFeed,
    private readonly options: EventStreamOptions,
  ) {
    this.position = options.after
    // Fastify destroys the body when the client goes, whenever that happens.
    this.body.once('close', () => this.end())
  }

  /**
   * Subscribes, then reads the first page of the catch-up: a Redis failure here throws before
   * anything is sent, so the caller can still answer with a problem. `complete` is for a stream
   * with nothing to come (a finished job's): it reads all of the catch-up instead, and neither
   * subscribes nor goes live, since the caller ends it next.
   * The preamble's `id` is the start position: a client cut off before its first event resumes
   * from there, not from whatever is newest when it comes back.
   */
  async open(complete = false): Promise<void> {
    this.body.write(`retry: ${RECONNECT_MS}\nid: ${this.position}\n\n`)
    if (this.options.gapBefore !== null) this.gap(this.options.gapBefore)
    try {
      if (complete) {
        let more = true
        while (more && !this.ended) more = await this.page()
        return
      }
      this.unsubscribe = this.feed.subscribe(
        this.options.queue,
        this.options.newest,
        (events, trim) => this.receive(events, trim),
      )
      if ((await this.page()) && !this.ended) void this.catchUp()
      else this.goLive()
    } catch (error) {
      this.end()
      throw error
    }
  }

  /** One page of the catch-up; true when there may be more. */
  private async page(): Promise<boolean> {
    const first = !this.paged
    this.paged = true
    const { events, oldestId } = await this.feed.after(this.options.queue, this.position, PAGE)
    const trim = { firstId: oldestId, trimmed: true }
    if (!first) {
      // The cap trimmed the stream past the position while this watcher was catching up (the
      // stream held the position once: it is trimmed if its oldest entry is past it).
      this.gapAfter(trim, this.position)
    } else {
      // Trimmed since the caller judged the gap: judged again on what is left.
      const check = this.options.gapCheck
      if (check?.oldest && oldestId !== null && compareIds(oldestId, check.oldest) > 0) {
        this.gapAfter(trim, check.from)
      }
    }
    this.emit(events)
    return events.length === PAGE
  }

  /** The rest of the catch-up, after the answer's headers went out; a failure ends the stream. */
  private async catchUp(): Promise<void> {
    try {
      let more = true
      while (more) {
        if (this.body.writableLength > MAX_BUFFERED_BYTES && !(await this.drained())) {
          if (!this.ended) this.cutOff() // stalled, rather than ended meanwhile
        }
        if (this.ended) return
        more = await this.page()
      }
      this.goLive()
    } catch {
      // Redis failed mid catch-up: the client reconnects and resumes after its last event.
      this.end()
    }
  }

  /** True once the client has read what is buffered; false after the stall time or when it ended. */
  private drained(): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (drained: boolean) => {
        clearTimeout(timer)
        this.body.off('drain', onDrain)
        this.stopWaiting = null
        resolve(drained)
      }
      const onDrain = () => done(true)
      const timer = setTimeout(() => done(false), this.options.stallMs ?? STALL_MS)
      this.stopWaiting = () => done(false)
      this.body.once('drain', onDrain)
    })
  }

  private goLive(): void {
    if (this.ended) return
    const held = this.held ?? []
    this.held = null
    if (this.heldTrim !== null) this.gapAfter(this.heldTrim, this.position)
    this.emit(held)
    if (this.ended) return
    // Checked twice per interval, so a quiet stream is never silent for longer than it.
    const { keepAliveMs } = this.options
    this.keepAlive = setInterval(() => {
      if (Date.now() - this.lastWriteAt >= keepAliveMs / 2) this.write(': keep-alive\n\n')
    }, keepAliveMs / 2)
    this.keepAlive.unref()
  }

  private receive(events: readonly QueueEvent[], trim: StreamTrim): void {
    try {
      if (this.held !== null) {
        this.held.push(...events)
        this.heldTrim = trim
        // A catch-up that cannot keep up with the queue (a watcher reading slowly from far
        // back): cut it off rather than hold the queue's traffic.
        if (this.held.length > MAX_HELD) this.cutOff()
        return
      }
      this.gapAfter(trim, this.position)
      this.emit(events)
      if (this.body.writableLength > MAX_BUFFERED_BYTES) this.cutOff()
    } catch {
      this.end()
    }
  }

  /**
   * Writes the entries after the position that pass the job filter, in order, in one write:
   * a follower's batch (up to 500 entries) costs one socket write per watcher, not one per entry.
   */
  private emit(events: readonly QueueEvent[]): void {
    const first = events[0]
    const last = events.at(-1)
    if (this.ended || first === undefined || last === undefined) return
    const { queue, job } = this.options
    if (job === null && compareIds(first.id, this.position) > 0) {
      // The common case, a live batch wholly after the position: the shared bytes, as they are.
      this.position = last.id
      this.emitted += events.length
      this.write(batchOf(queue, events))
      return
    }
    let out = ''
    let final = false
    for (const event of events) {
      if (compareIds(event.id, this.position) <= 0) continue
      this.position = event.id
      if (job !== null && event.job !== job) continue
      out += frameOf(queue, event)
      this.emitted++
      if (job !== null && isFinal(event.state) && this.endsWatch(event)) {
        final = true
        break
      }
    }
    if (out !== '') this.write(out)
    if (final) this.end()
  }

  private endsWatch(event: QueueEvent): boolean {
    const { final } = this.options
    if (final === undefined) return true
    return (
      event.at >= final.at && (final.afterId === null || compareIds(event.id, final.afterId) > 0)
    )
  }

  /** Tells of entries after `position` that the cap dropped before this watcher read them. */
  private gapAfter(trim: StreamTrim, position: string): void {
    const oldest = droppedAfter(trim, position)
    if (oldest === null) return
    this.gap(oldest)
    void this.endIfJobOver()
  }

  /** After a gap: the watched job's final transition may be among what was dropped. */
  private async endIfJobOver(): Promise<void> {
    const { jobOver } = this.options
    if (jobOver === undefined || this.checking) return
    this.checking = true
    try {
      if (await jobOver()) this.end()
    } catch {
      // Redis failed: the client reconnects, and the route reads the job's state then.
      this.end()
    } finally {
      this.checking = false
    }
  }

  /**
   * Its `id` is the position just before the oldest entry left: a client that reconnects after
   * it resumes there, and is not told of the same gap again. A stream Redis lost whole has no
   * entry left; its gap is told from the start, `0`.
   */
  private gap(oldestId: string): void {
    this.gapped = true
    const fromStart = oldestId === STREAM_START
    const data = JSON.stringify({
      queue: this.options.queue,
      oldest_id: fromStart ? '0' : oldestId,
    })
    this.write(`id: ${fromStart ? '0' : previousId(oldestId)}\nevent: gap\ndata: ${data}\n\n`)
  }

  private write(text: string | Buffer): void {
    this.lastWriteAt = Date.now()
    this.body.write(text)
  }

  /** Ends the stream and drops the connection: the client stopped reading. */
  private cutOff(): void {
    this.end()
    this.body.destroy()
    this.options.abort()
  }

  /**
   * Ends the stream for a shutdown; a client that has not read the rest within `graceMs` (it
   * stopped reading, and the socket's buffers are full) is dropped, or it would hold the
   * shutdown open for as long as it stays.
   */
  shutDown(graceMs: number): void {
    this.end()
    const timer = setTimeout(() => this.options.abort(), graceMs)
    timer.unref()
    this.body.once('close', () => clearTimeout(timer))
  }

  /** Ends the stream (idempotent): on a watched job's final state, a disconnect or shutdown. */
  end(): void {
    if (this.ended) return
    this.ended = true
    if (this.keepAlive) clearInterval(this.keepAlive)
    this.unsubscribe()
    this.stopWaiting?.()
    this.body.end()
    this.options.onEnd()
  }
}
