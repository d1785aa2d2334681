import type { FastifyInstance } from 'fastify'
import type { Contract } from '../src/contract.js'
import { ProblemError, queueNotFound } from '../src/errors.js'
import { queueSummaryView } from '../src/queue-view.js'
import { QUEUE, type QueueParams } from './params.js'

export interface QueuesRoutesOptions {
  contract: Contract
}

/** Queues and their counts, for dashboards; pausing and resuming a queue's delivery; deleting an empty queue. */
export default async function queuesRoutes(
  app: FastifyInstance,
  { contract }: QueuesRoutesOptions,
) {
  const queues = app.store.queues

  app.get<{ Querystring: { offset: number; limit?: number; after?: string } }>(
    '/v1/queues',
    contract.route('listQueues'),
    async ({ query: { offset, limit, after } }) => {
      if (limit === undefined && offset === 0 && after === undefined) {
        const all = await queues.allCounts()
        return { total: all.length, offset, next: null, queues: all.map(queueSummaryView) }
      }
      const page = await queues.page(offset, limit ?? Number.POSITIVE_INFINITY, after ?? null)
      const last = page.counts.at(-1)
      return {
        total: page.total,
        offset: page.start,
        ...(limit === undefined ? {} : { limit }),
        // The last name on the page, not a position: the next page starts after it however
        // the queues change meanwhile. An empty page past the end has nothing to follow.
        next: page.more && last !== undefined ? last.name : null,
        queues: page.counts.map(queueSummaryView),
      }
    },
  )

  const known = async (queue: string) => {
    if (!(await queues.exists(queue))) {
      throw queueNotFound(queue)
    }
  }

  app.get<{ Params: QueueParams }>(
    `/v1/queues/${QUEUE}`,
    contract.route('getQueue'),
    async ({ params: { queue } }) => {
      await known(queue)
      return queueSummaryView(await queues.counts(queue))
    },
  )

  for (const [action, operation] of [
    ['pause', 'pauseQueue'],
    ['resume', 'resumeQueue'],
  ] as const) {
    app.post<{ Params: QueueParams }>(
      `/v1/queues/${QUEUE}::${action}`,
      contract.route(operation),
      async ({ params: { queue } }) => {
        // An unknown queue is most likely a typo: pausing it would hold back nothing.
        await known(queue)
        if (!(await queues.setPaused(queue, action === 'pause'))) throw queueNotFound(queue)
        return queueSummaryView(await queues.counts(queue))
      },
    )
  }

  app.delete<{ Params: QueueParams }>(
    `/v1/queues/${QUEUE}`,
    contract.route('deleteQueue'),
    async ({ params: { queue } }, reply) => {
      await known(queue)
      const deleted = await queues.delete(queue)
      if (deleted.outcome === 'not_empty') {
        const { queued, scheduled, active, dead } = deleted.counts
        throw new ProblemError(
          'QUEUE_NOT_EMPTY',
          `Queue ${queue} still holds jobs (${queued} queued, ${scheduled} scheduled, ${active} active, ${dead} dead): cancel, finish or purge them first.`,
          { extensions: { counts: deleted.counts } },
        )
      }
      return reply.code(204).send()
    },
  )
}
