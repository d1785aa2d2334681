import Fastify, { type FastifyInstance } from 'fastify'
import deadLettersRoutes from '../routes/dead-letters.js'
import healthRoutes from '../routes/health.js'
import jobsRoutes from '../routes/jobs.js'
import queuesRoutes from '../routes/queues.js'
import workersRoutes from '../routes/workers.js'
import type { Config } from './config.js'
import { Contract, validatorCompiler } from './contract.js'
import { AccessLog, loggerOptions } from './logger.js'
import problems from './plugins/problems.js'
import store from './plugins/store.js'
import type { RedisClient } from './queue/scripts.js'
import { requestIdOf } from './request-id.js'

export interface AppOptions {
  /** A Redis client to use instead of connecting to `config.redisUrl`. */
  redis?: RedisClient
  /** The HTTP contract; loaded from openapi.yaml when absent. */
  contract?: Contract
}

/** Builds the gateway without listening: every plugin and route, ready for `inject` or `listen`. */
export function buildApp(config: Config, options: AppOptions = {}): FastifyInstance {
  const contract = options.contract ?? new Contract()
  const app = Fastify({
    logger: loggerOptions(config.logLevel),
    bodyLimit: config.bodyLimit,
    genReqId: requestIdOf,
    logController: new AccessLog(),
    return503OnClosing: true,
  })

  app.setValidatorCompiler(validatorCompiler())
  // Only JSON bodies: without this parser a text/plain body reaches validation instead of a 415.
  app.removeContentTypeParser('text/plain')

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })

  app.register(problems, { bodyLimit: config.bodyLimit })
  app.register(store, { config, ...(options.redis ? { client: options.redis } : {}) })
  app.register(healthRoutes, { contract })
  app.register(queuesRoutes, { contract })
  app.register(jobsRoutes, { contract, config })
  app.register(workersRoutes, { contract })
  app.register(deadLettersRoutes, { contract })
  return app
}
