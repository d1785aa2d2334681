import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { createRedisClient, waitUntilReady } from '../queue/connection.js'
import { JobStore } from '../queue/job-store.js'
import type { RedisClient } from '../queue/scripts.js'

declare module 'fastify' {
  interface FastifyInstance {
    jobs: JobStore
  }
}

export interface StoreOptions {
  config: Config
  /** A client to use instead of one built from `config.redisUrl`; the app still closes it. */
  client?: RedisClient
}

const LOG_EVERY_MS = 5000

/** Connects to Redis and decorates the app with the job store; closes the client on shutdown. */
export default fp(
  async function store(app: FastifyInstance, { config, client: given }: StoreOptions) {
    const client = given ?? createRedisClient({ url: config.redisUrl })
    let lastLogged = 0
    client.on('error', (error: Error) => {
      const now = Date.now()
      if (now - lastLogged < LOG_EVERY_MS) return
      lastLogged = now
      app.log.warn({ err: error }, 'Redis connection error')
    })
    if (!(await waitUntilReady(client, 2000))) {
      app.log.warn('Redis is not reachable yet; requests get 503 until it is')
    }
    app.decorate(
      'jobs',
      new JobStore(client, {
        keyPrefix: config.keyPrefix,
        idempotencyTtlMs: config.idempotencyTtlMs,
        eventsMaxLen: config.eventsMaxLen,
        maxQueueDepth: config.maxQueueDepth,
      }),
    )
    app.addHook('onClose', async () => {
      await client.quit().catch(() => client.disconnect())
    })
  },
  { name: 'jobgate-store' },
)
