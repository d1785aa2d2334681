import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import { CLIENT_CLOSED_REQUEST, logClientClosed } from '../logger.js'
import type { QueueCounts } from '../queue/queue-store.js'
import { QUEUE_COUNTERS } from '../queue-view.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: GatewayMetrics
  }
  interface FastifyContextConfig {
    /** The route's path in openapi.yaml (`/v1/queues/{queue}/jobs/{id}:ack`): its metrics label. */
    path?: string
    /**
     * The route's 200 is a stream held open for as long as its client stays: counted like any
     * answer, but its duration is no latency, so it stays out of the request histogram.
     */
    streamed?: boolean
  }
}

export interface GatewayMetrics {
  registry: Registry
  /** Counts a job created (or, `replayed`, an earlier one answered) by a submission. */
  submitted(queue: string, replayed: boolean): void
  rejected: Counter<'code'>
  rateLimited: Counter<'scope'>
}

/** The request a connection is answering, until its answer is finished. */
const IN_FLIGHT = Symbol('jobgate.inFlight')
type TrackedSocket = Socket & { [IN_FLIGHT]?: FastifyReply | null }

const BREAKER_STATES = { closed: 0, half_open: 1, open: 2 } as const
const QUEUE_STATES = ['queued', 'scheduled', 'active', 'dead'] as const

/**
 * Prometheus metrics on a registry of this app (not the process-global one). HTTP metrics are
 * labelled by route (its openapi.yaml path), never by raw URL; queue metrics are read from Redis on each scrape.
 */
export default fp(
  async function metrics(app: FastifyInstance) {
    const registry = new Registry()
    collectDefaultMetrics({ register: registry, prefix: 'jobgate_' })
    const labels = ['method', 'route', 'status'] as const
    const requests = new Counter({
      name: 'jobgate_http_requests_total',
      help: 'HTTP requests answered, by route pattern and status',
      labelNames: labels,
      registers: [registry],
    })
    const latency = new Histogram({
      name: 'jobgate_http_request_duration_seconds',
      help: 'Time to answer an HTTP request, by route pattern and status',
      labelNames: labels,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    })
    /** Counts by queue so far (both counters below): the clock of their marks. */
    let counts = 0
    /**
     * The registry's names, read after a mark: a queue is registered before its first job is
     * counted, so the reading holds every queue counted up to the mark. Shared by whoever asks
     * while it is out, with its own mark (not the scrape's queue reading, which may have
     * started before a queue was made and counted).
     */
    let registryRead: Promise<{ mark: number; names: Set<string> } | null> | null = null
    const readRegistry = () => {
      const mark = counts
      registryRead ??= app.store.queues
        .names()
        .then((names) => ({ mark, names: new Set(names) }))
        .catch(() => null)
        .finally(() => {
          registryRead = null
        })
      return registryRead
    }
    /**
     * A counter by queue whose scrape drops the series of queues deleted since (on any
     * gateway): with queues made and deleted, they would pile up. A queue counted after the
     * reading's mark is left for the next scrape.
     */
    const perQueue = (name: string, help: string) => {
      /** Each counted queue, with the number of the count that last touched it. */
      const counted = new Map<string, number>()
      const counter: Counter<'queue'> = new Counter({
        name,
        help,
        labelNames: ['queue'],
        registers: [registry],
        async collect() {
          if (counted.size === 0) return
          const reading = await readRegistry()
          if (reading === null) return
          for (const [queue, count] of counted) {
            if (count > reading.mark || reading.names.has(queue)) continue
            counter.remove({ queue })
            counted.delete(queue)
          }
        },
      })
      return (queue: string) => {
        counts += 1
        counted.set(queue, counts)
        counter.inc({ queue })
      }
    }
    const enqueued = perQueue('jobgate_jobs_enqueued_total', 'Jobs created by submissions')
    const replayed = perQueue(
      'jobgate_jobs_replayed_total',
      'Submissions answered with an earlier job (same idempotency key and body)',
    )
    const gateway: GatewayMetrics = {
      registry,
      submitted: (queue, wasReplayed) => (wasReplayed ? replayed : enqueued)(queue),
      rejected: new Counter({
        name: 'jobgate_jobs_rejected_total',
        help: 'Job submissions refused, by problem code',
        labelNames: ['code'],
        registers: [registry],
      }),
      rateLimited: new Counter({
        name: 'jobgate_rate_limited_total',
        help: 'Requests refused by a rate limit, by scope',
        labelNames: ['scope'],
        registers: [registry],
      }),
    }

    const breaker = app.store.breaker
    new Gauge({
      name: 'jobgate_breaker_state',
      help: 'Circuit breaker around Redis: 0 closed, 1 half-open, 2 open',
      registers: [registry],
      collect() {
        this.set(BREAKER_STATES[breaker.state])
      },
    })
    const transitions = new Counter({
      name: 'jobgate_breaker_transitions_total',
      help: 'Circuit breaker state changes, by new state',
      labelNames: ['state'],
      registers: [registry],
    })
    breaker.onStateChange((state) => transitions.inc({ state }))

    if (app.store.countsReplicas) {
      const required = app.store.replicasRequired
      new Gauge({
        name: 'jobgate_redis_replicas_required',
        help: 'Replicas every write waits for before it is answered (REDIS_WAIT_REPLICAS)',
        registers: [registry],
        collect() {
          this.set(required)
        },
      })
      new Gauge({
        name: 'jobgate_redis_replicas_online',
        help: 'Replicas the Redis primary counts online, read on each scrape (NaN while it does not answer); below the required count, writes get 503 NOT_REPLICATED',
        registers: [registry],
        async collect() {
          try {
            const replicas = await app.store.replicas()
            if (replicas) this.set(replicas.online)
          } catch (error) {
            // Unknown rather than the last count, which would hide the outage.
            this.set(Number.NaN)
            app.log.warn({ err: error }, 'replica metrics skipped: Redis did not answer')
          }
        },
      })
    }

    // The gauges below are collected concurrently: they share one reading of every queue.
    const readQueues = (): Promise<QueueCounts[] | null> =>
      app.store.queues.allCounts().catch(() => null)
    // When Redis does not answer, every per-queue metric is absent (not its last value, which
    // would hide the outage) and jobgate_queue_metrics_up says why.
    new Gauge({
      name: 'jobgate_queue_metrics_up',
      help: '1 when this scrape read every queue from Redis, 0 when Redis did not answer',
      registers: [registry],
      async collect() {
        try {
          await app.store.queues.allCounts()
          this.set(1)
        } catch (error) {
          this.set(0)
          app.log.warn({ err: error }, 'queue metrics skipped: Redis did not answer')
        }
      },
    })
    new Gauge({
      name: 'jobgate_queues',
      help: 'Queues known to the gateway',
      registers: [registry],
      async collect() {
        const queues = await readQueues()
        this.set(queues ? queues.length : Number.NaN)
      },
    })
    new Gauge({
      name: 'jobgate_queue_jobs',
      help: 'Jobs of each queue in each waiting state',
      labelNames: ['queue', 'state'],
      registers: [registry],
      async collect() {
        this.reset()
        for (const counts of (await readQueues()) ?? []) {
          for (const state of QUEUE_STATES) this.set({ queue: counts.name, state }, counts[state])
        }
      },
    })
    new Gauge({
      name: 'jobgate_queue_paused',
      help: '1 while a queue is paused (workers lease nothing from it), else 0',
      labelNames: ['queue'],
      registers: [registry],
      async collect() {
        this.reset()
        for (const counts of (await readQueues()) ?? [])
          this.set({ queue: counts.name }, counts.pausedAt === null ? 0 : 1)
      },
    })
    new Counter({
      name: 'jobgate_queue_jobs_total',
      help: 'Running totals of what happened to the jobs of each queue (enqueued, succeeded, retried, dead, …), kept in Redis',
      labelNames: ['queue', 'outcome'],
      registers: [registry],
      async collect() {
        this.reset()
        for (const counts of (await readQueues()) ?? []) {
          // The stats hash holds more than outcomes (ready_seq, the last place in line).
          for (const outcome of QUEUE_COUNTERS) {
            this.inc({ queue: counts.name, outcome }, counts.totals[outcome] ?? 0)
          }
        }
      },
    })
    new Gauge({
      name: 'jobgate_queue_oldest_queued_age_seconds',
      help: 'Age of the oldest queued job of each queue',
      labelNames: ['queue'],
      registers: [registry],
      async collect() {
        this.reset()
        for (const counts of (await readQueues()) ?? []) {
          if (counts.oldestQueuedAt !== null) {
            this.set({ queue: counts.name }, Math.max(0, counts.now - counts.oldestQueuedAt) / 1000)
          }
        }
      },
    })

    app.decorate('metrics', gateway)
    // Label sets are resolved once per (method, route, status): prom-client would otherwise
    // hash the labels on every request. Routes are patterns, so the map stays small.
    const children = new Map<string, { count(): void; observe(seconds: number): void }>()
    const childrenFor = (method: string, route: string, status: number) => {
      const key = `${method} ${route} ${status}`
      let child = children.get(key)
      if (child === undefined) {
        const counter = requests.labels(method, route, String(status))
        const histogram = latency.labels(method, route, String(status))
        child = { count: () => counter.inc(), observe: (seconds) => histogram.observe(seconds) }
        children.set(key, child)
      }
      return child
    }
    const record = (request: FastifyRequest, reply: FastifyReply, status = reply.statusCode) => {
      const route = request.routeOptions.config?.path ?? request.routeOptions.url ?? 'unmatched'
      const child = childrenFor(request.method, route, status)
      child.count()
      if (!(status === 200 && request.routeOptions.config.streamed)) {
        child.observe(reply.elapsedTime / 1000)
      }
      if (reply.problemCode && route === '/v1/queues/{queue}/jobs' && request.method === 'POST') {
        gateway.rejected.inc({ code: reply.problemCode })
      }
    }
    // A request whose client closes the connection before its answer is complete (a stream's
    // watcher leaving, a worker killed in a long poll) never finishes: Fastify runs neither
    // onResponse nor its access log then. Each connection remembers its request in flight, and
    // its close counts and logs that one (a listener per connection, not per request).
    const leftBehind = (socket: TrackedSocket) => {
      const reply = socket[IN_FLIGHT]
      if (!reply) return
      socket[IN_FLIGHT] = null
      const status = reply.raw.headersSent ? reply.statusCode : CLIENT_CLOSED_REQUEST
      record(reply.request, reply, status)
      logClientClosed(reply.request, reply, status)
    }
    app.addHook('onRequest', (request, reply, done) => {
      const socket = request.raw.socket as TrackedSocket
      if (!(IN_FLIGHT in socket)) socket.once('close', () => leftBehind(socket))
      socket[IN_FLIGHT] = reply
      done()
    })
    app.addHook('onResponse', (request, reply, done) => {
      const socket = request.raw.socket as TrackedSocket
      if (socket[IN_FLIGHT] === reply) socket[IN_FLIGHT] = null
      record(request, reply)
      done()
    })
  },
  { name: 'jobgate-metrics', dependencies: ['jobgate-store', 'jobgate-problems'] },
)
