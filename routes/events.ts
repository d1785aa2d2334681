import type { FastifyInstance } from 'fastify'
import { Gauge } from 'prom-client'
import type { Config } from '../src/config.js'
import type { Contract } from '../src/contract.js'
import { ProblemError } from '../src/errors.js'
import { EventStream, FINAL_STATES } from '../src/event-stream.js'
import { compareIds, STREAM_START, type StreamInfo } from '../src/queue/event-feed.js'
import type { QueueParams } from './params.js'

export interface EventsRoutesOptions {
  contract: Contract
  config: Config
}

interface EventsQuery {
  job?: string
  since?: string
}

/** A stream entry id (`<ms>-<seq>`), or `0` for the oldest entry the stream still holds. */
const EVENT_ID = /^(0|[0-9]{1,15}-[0-9]{1,15})$/

function lastEventIdOf(header: string | string[] | undefined): string | null {
  // An empty id is what a client that saw no event with an id has: no position.
  if (header === undefined || header === '') return null
  if (typeof header === 'string' && EVENT_ID.test(header)) return header
  throw new ProblemError(
    'VALIDATION_FAILED',
    'Last-Event-ID must be the id of an event this stream sent (<ms>-<seq>) or 0.',
    {
      extensions: {
        errors: [
          { in: 'headers', pointer: '/last-event-id', detail: 'is not an event id of this stream' },
        ],
      },
    },
  )
}

/** `0` stands for the start of the stream. */
const position = (id: string) => (id === '0' ? STREAM_START : id)

/** The stream's oldest entry, when the cap may have dropped the entry `expected` or later ones. */
function gapBefore(info: StreamInfo, expected: string): string | null {
  if (!info.trimmed || info.firstId === null) return null
  return compareIds(expected, info.firstId) < 0 ? info.firstId : null
}

/** Server-Sent Events of a queue's state transitions, for dashboards and waiting producers. */
export default async function eventsRoutes(
  app: FastifyInstance,
  { contract, config }: EventsRoutesOptions,
) {
  const open = new Set<EventStream>()
  new Gauge({
    name: 'jobgate_event_streams',
    help: 'Server-Sent Events streams open on this gateway',
    registers: [app.metrics.registry],
    collect() {
      this.set(open.size)
    },
  })
  app.addHook('preClose', async () => {
    for (const stream of open) stream.end()
  })

  app.get<{ Params: QueueParams; Querystring: EventsQuery }>(
    '/v1/queues/:queue/events',
    // A HEAD would open a stream only to drop it.
    { ...contract.route('streamEvents'), exposeHeadRoute: false },
    async (request, reply) => {
      const { queue } = request.params
      const { job = null, since } = request.query
      const lastEventId = lastEventIdOf(request.headers['last-event-id'])
      if (open.size >= config.eventStreamsMax) {
        throw new ProblemError(
          'TOO_MANY_EVENT_STREAMS',
          `This gateway already serves ${open.size} event streams, its maximum. Retry shortly or on another replica.`,
          { headers: { 'retry-after': '5' } },
        )
      }
      const store = app.store
      const [info, known, watched] = await Promise.all([
        store.events.info(queue),
        store.queues.exists(queue),
        job === null ? null : store.jobs.get(queue, job),
      ])
      if (!known) {
        throw new ProblemError('QUEUE_NOT_FOUND', `There is no queue ${queue}: it never had a job.`)
      }
      if (job !== null && watched === null) {
        throw new ProblemError('JOB_NOT_FOUND', `Queue ${queue} has no job ${job}.`)
      }
      // Where to start: the client's last event, else `since`, else a watched job's creation
      // (its whole history), else now.
      const explicit = lastEventId ?? since ?? null
      let after = info.lastId
      let expected: string | null = null
      if (explicit !== null) {
        after = position(explicit)
        expected = after
      } else if (watched) {
        after = `${watched.createdAt - 1}-0`
        // The job's first entry is its creation, at or just after created_at.
        expected = `${watched.createdAt}-0`
      }
      const stream: EventStream = new EventStream(store.events, {
        queue,
        job,
        after,
        newest: info.lastId,
        gapBefore: expected === null ? null : gapBefore(info, expected),
        keepAliveMs: config.eventKeepAliveMs,
        onEnd: () => open.delete(stream),
      })
      open.add(stream)
      reply.raw.on('close', () => stream.end())
      await stream.open()
      if (watched && FINAL_STATES.has(watched.state) && stream.emitted === 0) {
        // Nothing left to tell about a finished job: 204 also stops an EventSource reconnecting.
        stream.end()
        return reply.code(204).send()
      }
      return reply
        .header('content-type', 'text/event-stream; charset=utf-8')
        .header('cache-control', 'no-cache')
        .header('x-accel-buffering', 'no')
        .send(stream.body)
    },
  )
}
