import type { FastifyInstance } from 'fastify'
import type { Contract } from '../src/contract.js'
import { jobNotFound, ProblemError } from '../src/errors.js'
import { cursorOf, jobView, pageView } from '../src/job-view.js'
import type { DeadJobOutcome } from '../src/queue/dead-letter-store.js'
import { JOB_ID, type JobParams, type QueueParams } from './params.js'

export interface DeadLettersRoutesOptions {
  contract: Contract
}

function done(
  outcome: DeadJobOutcome,
  queue: string,
  id: string,
): asserts outcome is Extract<DeadJobOutcome, { outcome: 'done' }> {
  if (outcome.outcome === 'not_found') {
    throw jobNotFound(queue, id)
  }
  if (outcome.outcome === 'not_dead') {
    throw new ProblemError('JOB_NOT_DEAD', `Job ${id} is ${outcome.state}, not dead.`, {
      extensions: { state: outcome.state },
    })
  }
}

/** The dead-letter set of a queue: list, redrive and purge, one job or all. */
export default async function deadLettersRoutes(
  app: FastifyInstance,
  { contract }: DeadLettersRoutesOptions,
) {
  const deadLetters = app.store.deadLetters

  app.get<{ Params: QueueParams; Querystring: { offset: number; limit: number; after?: string } }>(
    '/v1/queues/:queue/dead',
    contract.route('listDeadJobs'),
    async ({ params: { queue }, query: { offset, limit, after } }) => {
      return pageView(await deadLetters.list(queue, offset, limit, cursorOf(after)), limit)
    },
  )

  app.delete<{ Params: QueueParams }>(
    '/v1/queues/:queue/dead',
    contract.route('purgeDeadJobs'),
    async ({ params: { queue } }) => ({ purged: await deadLetters.purgeAll(queue) }),
  )

  app.post<{ Params: QueueParams }>(
    '/v1/queues/:queue/dead::redrive',
    contract.route('redriveDeadJobs'),
    async ({ params: { queue } }) => ({ redriven: await deadLetters.redriveAll(queue) }),
  )

  app.delete<{ Params: JobParams }>(
    `/v1/queues/:queue/dead/${JOB_ID}`,
    contract.route('purgeDeadJob'),
    async ({ params: { queue, id } }, reply) => {
      done(await deadLetters.purge(queue, id), queue, id)
      return reply.code(204).send()
    },
  )

  app.post<{ Params: JobParams }>(
    `/v1/queues/:queue/dead/${JOB_ID}::redrive`,
    contract.route('redriveDeadJob'),
    async ({ params: { queue, id } }) => {
      const redriven = await deadLetters.redrive(queue, id)
      done(redriven, queue, id)
      // As the redrive left it: a worker it woke may have leased it since.
      if (!redriven.job) throw jobNotFound(queue, id)
      return jobView(redriven.job)
    },
  )
}
