/**
 * The minimal Redis gateway: Fastify + one LPUSH of the body with a new id, then 202.
 * No idempotency, no job record, no status, no validation, no logging.
 */
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import { Redis } from 'ioredis'

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
  enableAutoPipelining: true,
})
const app = Fastify({ logger: false })
app.post<{ Params: { queue: string }; Body: Record<string, unknown> }>(
  '/v1/queues/:queue/jobs',
  async (request, reply) => {
    const id = randomUUID()
    await redis.lpush(
      `lpush:{${request.params.queue}}:jobs`,
      JSON.stringify({ id, ...request.body }),
    )
    return reply.code(202).send({ id, state: 'queued' })
  },
)
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
