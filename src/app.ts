import Fastify, { type FastifyInstance } from 'fastify'
import deadLettersRoutes from '../routes/dead-letters.js'
import eventsRoutes from '../routes/events.js'
import healthRoutes from '../routes/health.js'
import jobsRoutes from '../routes/jobs.js'
import metricsRoutes from '../routes/metrics.js'
import openApiRoutes from '../routes/openapi.js'
import queuesRoutes from '../routes/queues.js'
import workersRoutes from '../routes/workers.js'
import { answerClientError, answerConnect, answerExpectation } from './client-errors.js'
import type { Config } from './config.js'
import { Contract, validatorCompiler } from './contract.js'
import { ProblemError } from './errors.js'
import { AccessLog, loggerOptions } from './logger.js'
import auth from './plugins/auth.js'
import conditionalGet from './plugins/conditional-get.js'
import draining from './plugins/draining.js'
import jsonBody from './plugins/json-body.js'
import metrics from './plugins/metrics.js'
import problems, { sendProblem } from './plugins/problems.js'
import rateLimits from './plugins/rate-limit.js'
import store from './plugins/store.js'
import type { RedisClient } from './queue/scripts.js'
import { requestIdOf } from './request-id.js'

export interface AppOptions {
  /** A Redis client to use instead of connecting to `config.redisUrl`. */
  redis?: RedisClient
  /** The HTTP contract; loaded from openapi.yaml when absent. */
  contract?: Contract
}

/** TRUST_PROXY as Fastify takes it; a hop count N becomes "trust the N hops nearest to us". */
function trustProxyOption(
  trust: Config['trustProxy'],
): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof trust === 'number') return (_address, hop) => hop < trust
  return typeof trust === 'boolean' ? trust : [...trust]
}

/**
 * A percent-encoded ':' is data, not the start of an action (RFC 3986: a reserved character and
 * its encoding differ), yet the router matches `q%3Apause` as `q:pause`. No queue name or job id
 * holds a ':', so such a path names nothing; a proxy's rule on `:pause` cannot be walked around.
 */
const ENCODED_COLON = /%3a/i

const pathOf = (url: string) => {
  const query = url.indexOf('?')
  return query === -1 ? url : url.slice(0, query)
}

/** Builds the gateway without listening: every plugin and route, ready for `inject` or `listen`. */
export function buildApp(config: Config, options: AppOptions = {}): FastifyInstance {
  const contract = options.contract ?? new Contract()
  const app = Fastify({
    logger: loggerOptions(config.logLevel),
    bodyLimit: config.bodyLimit,
    trustProxy: trustProxyOption(config.trustProxy),
    // A request must arrive whole in time (Fastify's default is no limit: a body sent a byte at
    // a time held its connection forever). Node takes the limit only when it creates the server
    // (Fastify sets it later, too late), and checks every second instead of every 30.
    requestTimeout: config.requestTimeoutMs,
    http: {
      requestTimeout: config.requestTimeoutMs,
      connectionsCheckingInterval: 1000,
      // Node's own answer to an HTTP/1.1 request without Host is an empty 400: the onRequest
      // hook below answers it with a problem document instead.
      requireHostHeader: false,
    },
    genReqId: requestIdOf,
    logController: new AccessLog(),
    // The draining plugin answers requests during a shutdown, as problem documents.
    return503OnClosing: false,
    clientErrorHandler: answerClientError,
    // A URL Fastify cannot decode (`%ZZ`): no route is looked up, so no hook runs either.
    frameworkErrors: (error, request, reply) => {
      reply.header('x-request-id', request.id)
      sendProblem(
        request,
        reply,
        new ProblemError('VALIDATION_FAILED', `The URL is not valid: ${error.message}`),
      )
    },
  })

  app.setValidatorCompiler(validatorCompiler())

  app.server.on('connect', answerConnect)
  app.server.on('checkExpectation', answerExpectation)

  // Hooks on the request path are callback-style: no promise per request.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    if (request.headers.host === undefined && request.raw.httpVersion === '1.1') {
      return done(new ProblemError('VALIDATION_FAILED', 'An HTTP/1.1 request needs a Host header.'))
    }
    if (request.url.includes('%') && ENCODED_COLON.test(pathOf(request.url))) {
      return done(
        new ProblemError(
          'ROUTE_NOT_FOUND',
          `There is no route ${request.method} ${request.url}: the ':' of an action is written as it is, not percent-encoded.`,
        ),
      )
    }
    done()
  })

  app.register(problems, { bodyLimit: config.bodyLimit })
  app.register(jsonBody)
  app.register(draining, { shutdownTimeoutMs: config.shutdownTimeoutMs })
  app.register(store, { config, ...(options.redis ? { client: options.redis } : {}) })
  app.register(metrics)
  // Order matters: rate limits are attached to routes before the scope check, so that
  // requests with a missing or wrong key are throttled too.
  app.register(rateLimits, { limits: config.rateLimits })
  app.register(conditionalGet)
  app.register(auth, { apiKeys: config.apiKeys })
  app.register(healthRoutes, { contract })
  app.register(metricsRoutes, { contract })
  app.register(openApiRoutes, { contract })
  app.register(queuesRoutes, { contract })
  app.register(jobsRoutes, { contract, config })
  app.register(workersRoutes, { contract })
  app.register(deadLettersRoutes, { contract })
  app.register(eventsRoutes, { contract, config })
  // Last: the preClose hooks of a context registered after all others run after theirs.
  app.register(async (last) => last.addHook('preClose', () => app.keptAliveGrace()))
  return app
}
