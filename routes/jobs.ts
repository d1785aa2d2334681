import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Config } from '../src/config.js'
import type { Contract } from '../src/contract.js'
import { jobNotFound, type ProblemDocument, ProblemError } from '../src/errors.js'
import { idempotencyKeyOf } from '../src/idempotency.js'
import { cursorOf, type JobView, jobView, pageView } from '../src/job-view.js'
import { ANONYMOUS } from '../src/plugins/auth.js'
import { validationProblem } from '../src/plugins/problems.js'
import { prefersMinimal, RETURN_MINIMAL } from '../src/prefer.js'
import type { EnqueueResult } from '../src/queue/job-store.js'
import type { CancelableState, NewJob, WaitingState } from '../src/queue/records.js'
import {
  type AcceptedJob,
  type BatchJob,
  type EnqueueBody,
  keyRequiredProblem,
  newJob,
  type Submitter,
  submitted,
  timingProblem,
} from '../src/submission.js'
import { JOB_ID, type JobParams, type QueueParams } from './params.js'

export interface JobsRoutesOptions {
  contract: Contract
  config: Config
}

interface BatchBody {
  /** Each validated on its own: one that is not even an object fails alone. */
  jobs: unknown[]
}

type BatchItemResult =
  | { index: number; status: 202; replayed: boolean; location: string; job: JobView }
  | ({ index: number; status: 202; replayed: boolean; location: string } & AcceptedJob)
  | { index: number; status: number; problem: ProblemDocument }

export default async function jobsRoutes(
  app: FastifyInstance,
  { contract, config }: JobsRoutesOptions,
) {
  const submitter = (request: FastifyRequest<{ Params: QueueParams }>): Submitter => ({
    queue: request.params.queue,
    requestId: request.id,
    client: (request.identity ?? ANONYMOUS).name,
  })

  app.post<{ Params: QueueParams; Body: EnqueueBody }>(
    '/v1/queues/:queue/jobs',
    contract.route('enqueueJob'),
    async (request, reply) => {
      const key = idempotencyKeyOf(request.headers)?.key ?? null
      if (key === null && config.idempotencyRequired) throw keyRequiredProblem()
      const timing = timingProblem(request.body)
      if (timing) throw timing
      const minimal = prefersMinimal(request.headers)
      const job = newJob(request.body, submitter(request), key)
      const result = await app.store.jobs.enqueue(job)
      const outcome = submitted(job, result, request.body.payload, minimal)
      if (!outcome.accepted) throw outcome.problem
      if (minimal) reply.header('preference-applied', RETURN_MINIMAL)
      if (outcome.replayed) reply.header('idempotent-replayed', 'true')
      app.metrics.submitted(job.queue, outcome.replayed)
      return reply
        .code(202)
        .header('location', outcome.location)
        .send(outcome.job ?? outcome.acceptedJob)
    },
  )

  const validateItem = contract.itemValidator('enqueueJobs')

  app.post<{ Params: QueueParams; Body: BatchBody }>(
    '/v1/queues/:queue/jobs::batch',
    contract.route('enqueueJobs'),
    async (request, reply) => {
      const { queue } = request.params
      const from = submitter(request)
      const minimal = prefersMinimal(request.headers)
      // One slot per item, filled in as each item's outcome is known.
      const results: BatchItemResult[] = new Array(request.body.jobs.length)
      const tally = { accepted: 0, replayed: 0, rejected: 0 }
      // The longest Retry-After of the items refused for now (a full queue, Redis out of memory).
      let retryAfter = 0
      const refuse = (index: number, problem: ProblemError) => {
        // As the error handler logs a whole request's 500: a bug, logged with its cause.
        if (problem.status === 500) {
          request.log.error({ err: problem.cause, code: problem.code, index }, problem.detail)
        }
        app.metrics.rejected.inc({ code: problem.code })
        tally.rejected++
        retryAfter = Math.max(retryAfter, Number(problem.headers['retry-after'] ?? 0))
        const document = problem.toDocument(request.url, request.id)
        results[index] = { index, status: problem.status, problem: document }
      }
      const valid: { index: number; job: NewJob; payload: Record<string, unknown> }[] = []
      request.body.jobs.forEach((item, index) => {
        if (!validateItem(item)) {
          refuse(index, validationProblem(validateItem.errors ?? [], 'body', `/jobs/${index}`))
          return
        }
        const { idempotency_key: key = null, ...body } = item as BatchJob
        const timing = timingProblem(body, `/jobs/${index}`)
        if (timing) refuse(index, timing)
        else if (key === null && config.idempotencyRequired) {
          refuse(index, keyRequiredProblem(`/jobs/${index}`))
        } else valid.push({ index, job: newJob(body, from, key), payload: body.payload })
      })
      const stored =
        valid.length > 0
          ? await app.store.jobs.enqueueMany(
              queue,
              valid.map(({ job }) => job),
            )
          : []
      valid.forEach(({ index, job, payload }, n) => {
        const outcome = submitted(
          job,
          stored[n] as EnqueueResult,
          payload,
          minimal,
          `/jobs/${index}`,
        )
        if (!outcome.accepted) {
          refuse(index, outcome.problem)
          return
        }
        const { replayed, location, job: view, acceptedJob } = outcome
        app.metrics.submitted(queue, replayed)
        tally[replayed ? 'replayed' : 'accepted']++
        const item = { index, status: 202, replayed, location } as const
        results[index] = view === null ? { ...item, ...acceptedJob } : { ...item, job: view }
      })
      if (minimal) reply.header('preference-applied', RETURN_MINIMAL)
      if (retryAfter > 0) reply.header('retry-after', String(retryAfter))
      return { ...tally, results }
    },
  )

  app.get<{
    Params: QueueParams
    Querystring: { state: WaitingState; offset: number; limit: number; after?: string }
  }>(
    '/v1/queues/:queue/jobs',
    contract.route('listJobs'),
    async ({ params: { queue }, query: { state, offset, limit, after } }) => {
      const page = await app.store.jobs.list(queue, state, offset, limit, cursorOf(after))
      return pageView(page, limit)
    },
  )

  app.delete<{ Params: QueueParams; Querystring: { state: CancelableState } }>(
    '/v1/queues/:queue/jobs',
    contract.route('cancelJobs'),
    async ({ params: { queue }, query: { state } }) => ({
      canceled: await app.store.jobs.cancelWaiting(queue, state),
    }),
  )

  app.get<{ Params: JobParams }>(
    `/v1/queues/:queue/jobs/${JOB_ID}`,
    contract.route('getJob'),
    async (request) => {
      const { queue, id } = request.params
      const job = await app.store.jobs.get(queue, id)
      if (job === null) throw jobNotFound(queue, id)
      return jobView(job)
    },
  )

  app.delete<{ Params: JobParams }>(
    `/v1/queues/:queue/jobs/${JOB_ID}`,
    contract.route('cancelJob'),
    async ({ params: { queue, id } }) => {
      const outcome = await app.store.jobs.cancel(queue, id)
      if (outcome.outcome === 'not_found') {
        throw jobNotFound(queue, id)
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
