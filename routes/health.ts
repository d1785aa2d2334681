import type { FastifyInstance } from 'fastify'
import type { Contract } from '../src/contract.js'
import { ProblemError } from '../src/errors.js'

export interface HealthRoutesOptions {
  contract: Contract
}

export default async function healthRoutes(
  app: FastifyInstance,
  { contract }: HealthRoutesOptions,
) {
  app.get('/healthz', contract.route('getHealth'), async () => ({ status: 'ok' }))

  app.get('/readyz', contract.route('getReadiness'), async () => {
    // The PING goes through the breaker: while it is open, Redis would not be asked at all.
    let redis: 'up' | 'down' | 'unknown' = 'unknown'
    if (app.store.breaker.state !== 'open') {
      try {
        await app.store.ping()
        redis = 'up'
      } catch {
        redis = 'down'
      }
    }
    const checks = { redis, breaker: app.store.breaker.state }
    if (checks.redis !== 'up' || checks.breaker !== 'closed') {
      throw new ProblemError(
        'NOT_READY',
        checks.redis === 'down'
          ? 'Redis does not answer PING.'
          : `The circuit breaker around Redis is ${checks.breaker}${checks.redis === 'unknown' ? ': Redis was not asked' : ''}.`,
        { extensions: { checks }, headers: { 'retry-after': '1' } },
      )
    }
    return { status: 'ready', checks }
  })
}
