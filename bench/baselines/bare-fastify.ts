/**
 * The HTTP ceiling: a Fastify route that parses the JSON body and answers 202, touching
 * nothing else. No Redis, no validation, no logging.
 */
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'

const app = Fastify({ logger: false })
app.post('/v1/queues/:queue/jobs', async (_request, reply) =>
  reply.code(202).send({ id: randomUUID(), state: 'queued' }),
)
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
