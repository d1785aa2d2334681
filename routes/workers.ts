import type { FastifyBaseLogger, FastifyInstance, FastifyReply } from 'fastify'
import type { Contract } from '../src/contract.js'
import { jobNotFound, ProblemError } from '../src/errors.js'
import { reservationView, settlementView } from '../src/job-view.js'
import type { JobError, LeaseOutcome, LeaseStore, ReservedJob } from '../src/queue/lease-store.js'
import { JOB_ID, type JobParams, type QueueParams } from './params.js'

export interface WorkersRoutesOptions {
  contract: Contract
}

interface ReserveBody {
  worker: string
  lease_ms: number
  wait_ms: number
  lease_token?: string
}

interface LeaseBody {
  lease_token: string
}

interface AckBody extends LeaseBody {
  result?: unknown
  /** Lease the next job along with the ack. */
  reserve?: { worker: string; lease_ms: number; lease_token?: string }
}

interface FailBody extends LeaseBody {
  error: JobError
}

interface RetryBody extends FailBody {
  delay_ms?: number
}

interface HeartbeatBody extends LeaseBody {
  lease_ms: number
  progress?: unknown
}

function json(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value)
}

/** The value of a lease operation, or the problem that says why nothing changed. */
function held<T>(outcome: LeaseOutcome<T>, queue: string, id: string): T {
  if (outcome.outcome === 'done') return outcome
  if (outcome.outcome === 'not_found') {
    throw jobNotFound(queue, id)
  }
  if (outcome.outcome === 'too_large') {
    const code = outcome.field === 'result' ? 'RESULT_TOO_LARGE' : 'PROGRESS_TOO_LARGE'
    throw new ProblemError(
      code,
      `The ${outcome.field} is longer than ${outcome.maxBytes} bytes of JSON; nothing was changed.`,
    )
  }
  if (outcome.endedAs !== undefined) {
    throw new ProblemError(
      'LEASE_LOST',
      `This lease on job ${id} was already ended by a call with its token, which left the job ${outcome.endedAs} (the job is ${outcome.state} now); nothing was changed.`,
      { extensions: { state: outcome.state, ended_as: outcome.endedAs } },
    )
  }
  throw new ProblemError(
    'LEASE_LOST',
    `This lease on job ${id} is no longer held (the job is ${outcome.state}); nothing was changed. Stop working on it.`,
    { extensions: { state: outcome.state } },
  )
}

/**
 * A job leased for a caller whose connection closed before the answer went out is given back
 * (queued in front, attempt uncounted) instead of waiting out a lease nobody holds.
 */
async function releaseIfLeft(
  reply: FastifyReply,
  leases: LeaseStore,
  queue: string,
  job: ReservedJob,
  log: FastifyBaseLogger,
): Promise<boolean> {
  if (!reply.raw.destroyed) return false
  const about = { job_id: job.id, queue }
  try {
    if (await leases.release(queue, job)) {
      log.info(about, 'caller left before its job was sent: the job is queued again')
    } else {
      log.info(about, 'caller left before its job was sent, but a reserve sent again got it')
    }
  } catch (error) {
    log.warn(
      { ...about, err: error },
      'caller left before its job was sent; it comes back when its lease runs out',
    )
  }
  return true
}

/** The worker protocol over HTTP: the same scripts as a Redis worker, for any language. */
export default async function workersRoutes(
  app: FastifyInstance,
  { contract }: WorkersRoutesOptions,
) {
  const leases = app.store.leases

  app.post<{ Params: QueueParams; Body: ReserveBody }>(
    '/v1/queues/:queue/jobs::reserve',
    contract.route('reserveJob'),
    async (request, reply) => {
      // The client left while an earlier hook ran ('close' has fired already): lease it nothing.
      if (reply.raw.destroyed) return reply
      const { worker, lease_ms, wait_ms, lease_token } = request.body
      const gone = new AbortController()
      const leave = () => {
        if (!reply.raw.writableFinished) gone.abort()
      }
      reply.raw.once('close', leave)
      const job = await leases
        .reserveWaiting(request.params.queue, worker, lease_ms, wait_ms, gone.signal, lease_token)
        .finally(() => reply.raw.off('close', leave))
      if (job === null) return reply.code(204).send()
      if (await releaseIfLeft(reply, leases, request.params.queue, job, request.log)) return reply
      return reservationView(job)
    },
  )

  app.post<{ Params: JobParams; Body: AckBody }>(
    `/v1/queues/:queue/jobs/${JOB_ID}::ack`,
    contract.route('ackJob'),
    async ({ params: { queue, id }, body, log }, reply) => {
      const outcome = await leases.ack(queue, id, body.lease_token, json(body.result))
      const settlement = settlementView(id, held(outcome, queue, id))
      if (body.reserve === undefined) return settlement
      const { worker, lease_ms, lease_token } = body.reserve
      try {
        const next = await leases.reserve(queue, worker, lease_ms, lease_token)
        if (next.job === null) return { ...settlement, next: null }
        if (await releaseIfLeft(reply, leases, queue, next.job, log)) return reply
        return { ...settlement, next: reservationView(next.job) }
      } catch (error) {
        // The ack stands: answering with an error would have the worker ack again. No `next`
        // at all: the reserve may yet have run, and its token then gets that job from :reserve.
        log.warn({ err: error }, 'acked, but could not lease the next job')
        return settlement
      }
    },
  )

  app.post<{ Params: JobParams; Body: FailBody }>(
    `/v1/queues/:queue/jobs/${JOB_ID}::fail`,
    contract.route('failJob'),
    async ({ params: { queue, id }, body }) => {
      const outcome = await leases.fail(queue, id, body.lease_token, body.error)
      return settlementView(id, held(outcome, queue, id))
    },
  )

  app.post<{ Params: JobParams; Body: RetryBody }>(
    `/v1/queues/:queue/jobs/${JOB_ID}::retry`,
    contract.route('retryJob'),
    async ({ params: { queue, id }, body }) => {
      const outcome = await leases.retry(
        queue,
        id,
        body.lease_token,
        body.error,
        body.delay_ms ?? null,
      )
      return settlementView(id, held(outcome, queue, id))
    },
  )

  app.post<{ Params: JobParams; Body: HeartbeatBody }>(
    `/v1/queues/:queue/jobs/${JOB_ID}::heartbeat`,
    contract.route('heartbeatJob'),
    async ({ params: { queue, id }, body }) => {
      const outcome = await leases.heartbeat(
        queue,
        id,
        body.lease_token,
        body.lease_ms,
        json(body.progress),
      )
      const { leaseDeadline } = held(outcome, queue, id)
      return settlementView(id, { state: 'active', leaseDeadline })
    },
  )
}
