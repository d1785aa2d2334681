import type { FastifyInstance } from 'fastify'
import type { Contract } from '../src/contract.js'
import { queueNotFound } from '../src/errors.js'
import { queueSummaryView } from '../src/queue-view.js'
import type { QueueParams } from './params.js'

export interface QueuesRoutesOptions {
  contract: Contract
}

/** Queues and their counts, for dashboards. */
export default async function queuesRoutes(
  app: FastifyInstance,
  { contract }: QueuesRoutesOptions,
) {
  const queues = app.store.queues

  app.get('/v1/queues', contract.route('listQueues'), async () => {
    const names = await queues.names()
    const counts = await Promise.all(names.map((name) => queues.counts(name)))
    return { queues: counts.map(queueSummaryView) }
  })

  app.get<{ Params: QueueParams }>(
    '/v1/queues/:queue',
    contract.route('getQueue'),
    async ({ params: { queue } }) => {
      if (!(await queues.exists(queue))) {
        throw queueNotFound(queue)
      }
      return queueSummaryView(await queues.counts(queue))
    },
  )
}
