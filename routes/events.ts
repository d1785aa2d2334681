import type { FastifyInstance } from 'fastify'
import { Gauge } from 'prom-client'
import type { Identity } from '../src/auth.js'
import { ClientSlots } from '../src/client-slots.js'
import type { Config } from '../src/config.js'
import type { Contract } from '../src/contract.js'
import {
  invalidHeader,
  jobNotFound,
  ProblemError,
  queueNotFound,
  shuttingDown,
} from '../src/errors.js'
import { EventStream } from '../src/event-stream.js'
import { clientOf } from '../src/plugins/auth.js'
import {
  compareIds,
  droppedAfter,
  previousId,
  STREAM_START,
  type StreamInfo,
} from '../src/queue/event-feed.js'
import { isFinal, type JobRecord } from '../src/queue/records.js'
import type { QueueParams } from './params.js'

/** How long a shutdown waits for a watcher to read the end of its stream. */
const SHUTDOWN_GRACE_MS = 1000

export interface EventsRoutesOptions {
  contract: Contract
  config: Config
}

interface EventsQuery {
  job?: string
  since?: string
}

/** A stream entry id (`<ms>-<seq>`), or `0`: the `EventId` schema of openapi.yaml. */
export const EVENT_ID = /^(0|[0-9]{1,15}-[0-9]{1,15})$/

function lastEventIdOf(header: string | string[] | undefined): string | null {
  // An empty id is what a client that saw no event with an id has: no position.
  if (header === undefined || header === '') return null
  if (typeof header === 'string' && EVENT_ID.test(header)) return header
  throw invalidHeader(
    'VALIDATION_FAILED',
    'last-event-id',
    'Last-Event-ID must be the id of an event this stream sent (<ms>-<seq>) or 0.',
    'is not an event id of this stream',
  )
}

/** `0` stands for the start of the stream. */
const position = (id: string) => (id === '0' ? STREAM_START : id)

/**
 * Where a watcher starts: after the client's last event, else after `since`, else at a watched
 * job's creation (its whole history), else at the newest entry (only what happens from now).
 */
function startOf(
  info: StreamInfo,
  explicit: string | null,
  watched: JobRecord | null,
): { after: string; gapBefore: string | null; gapFrom: string } {
  if (explicit !== null) {
    const after = position(explicit)
    // A position the stream never reached: Redis lost entries (a restart without them). What
    // it holds now is told from its start, as after any gap.
    if (compareIds(after, info.lastId) > 0) {
      return { after: STREAM_START, gapBefore: info.firstId ?? STREAM_START, gapFrom: STREAM_START }
    }
    // A job's stream has nothing to lose from before the job was made (a reconnect with the
    // position of its first event, which lies in the margin below, included).
    const creation = watched === null ? null : creationOf(watched)
    const since = creation !== null && compareIds(after, creation) < 0 ? creation : after
    return { after, gapBefore: droppedAfter(info, since), gapFrom: since }
  }
  if (watched !== null) {
    // Its creation entry can carry a time a little before created_at (Redis may stamp entries
    // with the script's start); entries of other jobs in the margin are filtered out anyway.
    const creation = creationOf(watched)
    return {
      after: `${watched.createdAt - CREATION_MARGIN_MS}-0`,
      gapBefore: droppedAfter(info, creation),
      gapFrom: creation,
    }
  }
  return { after: info.lastId, gapBefore: null, gapFrom: info.lastId }
}

const CREATION_MARGIN_MS = 1000

/** The position just before the job's creation: a drop after it cost the job's stream entries. */
function creationOf(watched: JobRecord): string {
  return previousId(`${watched.createdAt}-0`)
}

/**
 * Where a watched job's final transition can be: its latest one, if that is final; else one
 * after the newest entry when the job was read (the stream's info is read first, on the same
 * connection), which may share the millisecond of its latest transition. A job redriven from
 * the dead set has a final state in its past, which is not the end.
 */
function finalOf(watched: JobRecord, info: StreamInfo): { at: number; afterId: string | null } {
  const at = watched.history.at(-1)?.at ?? watched.createdAt
  return { at, afterId: isFinal(watched.state) ? null : info.lastId }
}

/** Server-Sent Events of a queue's state transitions, for dashboards and waiting producers. */
export default async function eventsRoutes(
  app: FastifyInstance,
  { contract, config }: EventsRoutesOptions,
) {
  /** Each open stream, with who opened it: a key revoked (or rescoped) by a reload ends it. */
  const open = new Map<EventStream, Identity | null>()
  /** Requests past the limit check whose stream is not open yet: they hold a slot too. */
  let starting = 0
  /** Streams (open or starting) per client: one client may not take every slot. */
  const slots = new ClientSlots(config.eventStreamsPerClient)
  let closing = false
  new Gauge({
    name: 'jobgate_event_streams',
    help: 'Server-Sent Events streams open on this gateway',
    registers: [app.metrics.registry],
    collect() {
      this.set(open.size)
    },
  })
  app.addHook('preClose', async () => {
    closing = true
    for (const stream of open.keys()) stream.shutDown(SHUTDOWN_GRACE_MS)
  })
  const stopWatchingKeys = app.keyRing.onReplace(() => {
    for (const [stream, identity] of open) {
      if (identity !== null && !app.keyRing.stillAllows(identity, 'read')) stream.end()
    }
  })
  app.addHook('onClose', async () => stopWatchingKeys())

  const route = contract.route('streamEvents')
  app.get<{ Params: QueueParams; Querystring: EventsQuery }>(
    '/v1/queues/:queue/events',
    // A HEAD would open a stream only to drop it.
    { ...route, config: { ...route.config, streamed: true }, exposeHeadRoute: false },
    async (request, reply) => {
      const { queue } = request.params
      const { job = null, since } = request.query
      const lastEventId = lastEventIdOf(request.headers['last-event-id'])
      if (open.size + starting >= config.eventStreamsMax) {
        throw new ProblemError(
          'TOO_MANY_EVENT_STREAMS',
          `This gateway already serves ${open.size + starting} event streams, its maximum. Retry shortly or on another replica.`,
          { headers: { 'retry-after': '5' } },
        )
      }
      const client = clientOf(request)
      const release = slots.take(client)
      if (release === null) {
        throw new ProblemError(
          'TOO_MANY_CLIENT_EVENT_STREAMS',
          `This client already holds ${slots.heldBy(client)} event streams on this gateway, its maximum (EVENT_STREAMS_PER_CLIENT). Close one, or retry after Retry-After.`,
          { headers: { 'retry-after': '5' } },
        )
      }
      // The slot is the stream's once it opens (it gives the slot back when it ends); until
      // then, every way out gives it back.
      let handedOver = false
      try {
        const store = app.store
        starting++
        let lookups: [StreamInfo, boolean, JobRecord | null]
        try {
          lookups = await Promise.all([
            store.events.info(queue),
            store.queues.exists(queue),
            job === null ? null : store.jobs.get(queue, job),
          ])
        } finally {
          starting--
        }
        const [info, known, watched] = lookups
        if (!known) {
          throw queueNotFound(queue)
        }
        if (job !== null && watched === null) {
          throw jobNotFound(queue, job)
        }
        if (closing) throw shuttingDown()
        // The client left while the lookups ran: nobody to stream to.
        if (reply.raw.destroyed) return reply
        const start = startOf(info, lastEventId ?? since ?? null, watched)
        const stream: EventStream = new EventStream(store.events, {
          queue,
          job,
          ...(watched === null
            ? {}
            : {
                final: finalOf(watched, info),
                jobOver: async () => {
                  const now = await store.jobs.get(queue, watched.id)
                  return now === null || isFinal(now.state)
                },
              }),
          after: start.after,
          newest: info.lastId,
          gapBefore: start.gapBefore,
          gapCheck: { oldest: info.firstId, from: start.gapFrom },
          keepAliveMs: config.eventKeepAliveMs,
          abort: () => reply.raw.destroy(),
          onEnd: () => {
            open.delete(stream)
            release()
          },
        })
        handedOver = true
        open.set(stream, request.identity)
        // A stream its client closed never finishes: its access line and count come from the
        // metrics plugin's watch on the connection.
        reply.raw.once('close', () => stream.end())
        // A finished job has nothing more to come: read all that is left before answering.
        const finished = watched !== null && isFinal(watched.state)
        await stream.open(finished)
        if (finished) {
          if (stream.emitted === 0 && !stream.gapped) {
            // Nothing left to tell about it: 204, which also stops an EventSource reconnecting.
            stream.end()
            return reply.code(204).send()
          }
          stream.end()
        }
        return reply
          .header('content-type', 'text/event-stream; charset=utf-8')
          .header('cache-control', 'no-cache')
          .header('x-accel-buffering', 'no')
          .send(stream.body)
      } finally {
        if (!handedOver) release()
      }
    },
  )
}
