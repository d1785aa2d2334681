import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../src/config.js'
import type { Contract } from '../src/contract.js'
import { ProblemError } from '../src/errors.js'
import { fingerprint, idempotencyKeyOf } from '../src/idempotency.js'
import { jobLocation, jobView } from '../src/job-view.js'
import { ANONYMOUS } from '../src/plugins/auth.js'
import type { BackoffType, NewJob } from '../src/queue/records.js'
import type { JobParams, QueueParams } from './params.js'

export interface JobsRoutesOptions {
  contract: Contract
  config: Config
}

/** The `EnqueueRequest` schema of openapi.yaml, after validation filled in its defaults. */
interface EnqueueBody {
  type: string
  payload: Record<string, unknown>
  max_attempts: number
  delay_ms?: number
  run_at?: string
  ttl_ms?: number
  priority: number
  timeout_ms?: number
  backoff: { type: BackoffType; delay_ms: number; max_delay_ms: number; jitter: boolean }
}

export default async function jobsRoutes(
  app: FastifyInstance,
  { contract, config }: JobsRoutesOptions,
) {
  app.post<{ Params: QueueParams; Body: EnqueueBody }>(
    '/v1/queues/:queue/jobs',
    contract.route('enqueueJob'),
    async (request, reply) => {
      const idempotency = idempotencyKeyOf(request.headers)
      if (idempotency === null && config.idempotencyRequired) {
        throw new ProblemError(
          'IDEMPOTENCY_KEY_REQUIRED',
          'This gateway requires an Idempotency-Key (or X-Request-ID) header on every job submission.',
        )
      }
      const { queue } = request.params
      const body = request.body
      const job: NewJob = {
        id: randomUUID(),
        queue,
        type: body.type,
        payload: JSON.stringify(body.payload),
        priority: body.priority,
        maxAttempts: body.max_attempts,
        timeoutMs: body.timeout_ms ?? null,
        backoff: {
          type: body.backoff.type,
          delayMs: body.backoff.delay_ms,
          maxDelayMs: body.backoff.max_delay_ms,
          jitter: body.backoff.jitter,
        },
        delayMs: body.delay_ms ?? 0,
        runAt: body.run_at === undefined ? null : Date.parse(body.run_at),
        ttlMs: body.ttl_ms ?? null,
        requestId: request.id,
        client: (request.identity ?? ANONYMOUS).name,
        idempotency: idempotency && { key: idempotency.key, fingerprint: fingerprint(body) },
      }
      const result = await app.store.jobs.enqueue(job)
      switch (result.outcome) {
        case 'created':
        case 'replayed':
          if (result.outcome === 'replayed') {
            reply.header('idempotent-replayed', 'true')
            app.metrics.replayed.inc({ queue })
          } else {
            app.metrics.enqueued.inc({ queue })
          }
          return reply
            .code(202)
            .header('location', jobLocation(queue, result.job.id))
            .send(jobView(result.job))
        case 'conflict':
          throw new ProblemError(
            'IDEMPOTENCY_KEY_REUSED',
            `The idempotency key "${idempotency?.key}" was first used for a different request (job ${result.jobId}). Use a new key for a new job.`,
          )
        case 'queue_full':
          throw new ProblemError(
            'QUEUE_FULL',
            `Queue ${queue} holds ${result.depth} waiting jobs, its maximum. Retry once workers catch up.`,
            { headers: { 'retry-after': '1' } },
          )
      }
    },
  )

  app.get<{ Params: JobParams }>(
    '/v1/queues/:queue/jobs/:id',
    contract.route('getJob'),
    async (request) => {
      const { queue, id } = request.params
      const job = await app.store.jobs.get(queue, id)
      if (job === null) throw new ProblemError('JOB_NOT_FOUND', `Queue ${queue} has no job ${id}.`)
      return jobView(job)
    },
  )

  app.delete<{ Params: JobParams }>(
    '/v1/queues/:queue/jobs/:id',
    contract.route('cancelJob'),
    async ({ params: { queue, id } }) => {
      const outcome = await app.store.jobs.cancel(queue, id)
      if (outcome.outcome === 'not_found') {
        throw new ProblemError('JOB_NOT_FOUND', `Queue ${queue} has no job ${id}.`)
      }
      if (outcome.outcome === 'not_cancelable') {
        throw new ProblemError(
          'JOB_NOT_CANCELABLE',
          `Job ${id} is ${outcome.state}: only queued and scheduled jobs can be canceled.`,
          { extensions: { state: outcome.state } },
        )
      }
      return jobView(outcome.job)
    },
  )
}
