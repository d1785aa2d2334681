import rateLimit, { type FastifyRateLimitStore } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Scope } from '../auth.js'
import type { RateLimit } from '../config.js'
import { ProblemError } from '../errors.js'
import { clientOf } from './auth.js'

export interface RateLimitOptions {
  limits: Readonly<Record<Scope, RateLimit | null>>
}

const UNCOUNTED_WARNING_EVERY_MS = 10_000

function clientKey(scope: Scope, request: FastifyRequest): string {
  return `${scope}:${clientOf(request)}`
}

/**
 * Requests per window for each (client, scope), counted in Redis so the limits hold across
 * gateway replicas (the store's `RateLimitCounter`, one counter per client and scope for all
 * routes of the scope). A refused request gets 429 with Retry-After, the classic X-RateLimit-*
 * headers and the IETF draft's RateLimit-Policy/RateLimit fields. When Redis is unavailable
 * the count fails as the store's calls do (503, at once while the breaker is open); when it
 * fails otherwise (an unexpected reply), requests pass uncounted.
 */
export default fp(
  async function rateLimits(app: FastifyInstance, { limits }: RateLimitOptions) {
    // Runs before the plugin's own onRoute hook (registered below): it reads this config.
    app.addHook('onRoute', (route) => {
      const scope = route.config?.scope
      const limit = scope ? limits[scope] : null
      if (!scope || !limit) return
      // A route outside the limits is so for callers with a key; guesses are still counted.
      const exempt = route.config?.rateLimited === false
      route.config = {
        ...route.config,
        rateLimit: {
          ...(exempt && { allowList: (request: FastifyRequest) => request.identity !== null }),
          max: limit.max,
          timeWindow: limit.windowMs,
          keyGenerator: (request: FastifyRequest) => clientKey(scope, request),
          onExceeded: () => app.metrics.rateLimited.inc({ scope }),
          errorResponseBuilder: (_request, context) =>
            new ProblemError(
              'RATE_LIMITED',
              `At most ${limit.max} ${scope} requests per ${limit.windowMs / 1000} s; retry in ${context.after}.`,
            ),
        },
      }
    })

    const counter = app.store.rateLimits
    let warnedAt = 0
    const incr: FastifyRateLimitStore['incr'] = (key, callback, windowMs, max) =>
      counter.incr(
        key,
        (error, result) => {
          if (error === null || error instanceof ProblemError) return callback(error, result)
          // Counted as nothing: the plugin sends no headers for a window that ends now.
          if (Date.now() - warnedAt >= UNCOUNTED_WARNING_EVERY_MS) {
            warnedAt = Date.now()
            app.log.warn({ err: error }, 'rate limits are not counted: the count failed')
          }
          callback(null, { current: 0, ttl: 0 })
        },
        windowMs,
        max,
      )
    await app.register(rateLimit, {
      global: false,
      store: class SharedCounter implements FastifyRateLimitStore {
        incr = incr
        // Every route of a scope shares the client's counter: the key names the scope.
        child = () => this
      },
      skipOnError: false,
    })

    app.addHook('onSend', (request, reply, payload, done) => {
      const scope = request.routeOptions.config?.scope
      const limit = scope ? limits[scope] : null
      const remaining = reply.getHeader('x-ratelimit-remaining')
      if (!scope || !limit || remaining === undefined) return done(null, payload)
      // The store could not count (the request passed uncounted). The plugin still
      // wrote a full quota and a window that ends now; say nothing instead. A count always
      // has a window that ends later (the script's ttl is at least 1 ms).
      if (Number(reply.getHeader('x-ratelimit-reset')) === 0) {
        for (const name of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset']) {
          reply.removeHeader(name)
        }
        return done(null, payload)
      }
      reply.header(
        'ratelimit-policy',
        `"${scope}";q=${limit.max};w=${Math.ceil(limit.windowMs / 1000)}`,
      )
      reply.header(
        'ratelimit',
        `"${scope}";r=${remaining};t=${reply.getHeader('x-ratelimit-reset') ?? 0}`,
      )
      done(null, payload)
    })
  },
  { name: 'jobgate-rate-limit', dependencies: ['jobgate-store', 'jobgate-metrics'] },
)
