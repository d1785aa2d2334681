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
  app.get('/healthz', { schema: contract.routeSchema('getHealth') }, async () => ({ status: 'ok' }))

  app.get('/readyz', { schema: contract.routeSchema('getReadiness') }, async () => {
    try {
      await app.store.ping()
    } catch (error) {
      throw new ProblemError('NOT_READY', 'Redis does not answer PING.', {
        extensions: { checks: { redis: 'down' } },
        headers: { 'retry-after': '1' },
        cause: error,
      })
    }
    return { status: 'ready', checks: { redis: 'up' } }
  })
}
