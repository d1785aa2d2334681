/**
 * What a user would otherwise pick: Fastify + BullMQ, deduplicating by using the
 * Idempotency-Key as the BullMQ job id. One Queue per queue name, created on first use.
 */
import { randomUUID } from 'node:crypto'
import { Queue } from 'bullmq'
import Fastify from 'fastify'
import { Redis } from 'ioredis'

const connection = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
  maxRetriesPerRequest: null,
  enableAutoPipelining: true,
})
const queues = new Map<string, Queue>()
const app = Fastify({ logger: false })
app.post<{ Params: { queue: string }; Body: { type: string; payload?: object } }>(
  '/v1/queues/:queue/jobs',
  async (request, reply) => {
    const name = request.params.queue
    let queue = queues.get(name)
    if (!queue) {
      queue = new Queue(name, { connection })
      queues.set(name, queue)
    }
    const key = request.headers['idempotency-key']
    const job = await queue.add(request.body.type, request.body.payload ?? {}, {
      jobId: typeof key === 'string' ? key : randomUUID(),
    })
    return reply.code(202).send({ id: job.id, state: 'queued' })
  },
)
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
