import type { FastifyInstance } from 'fastify'
import type { Contract } from '../src/contract.js'

export interface MetricsRoutesOptions {
  contract: Contract
}

/** Prometheus text, for scrapers. */
export default async function metricsRoutes(
  app: FastifyInstance,
  { contract }: MetricsRoutesOptions,
) {
  app.get('/metrics', contract.route('getMetrics'), async (_request, reply) => {
    const { registry } = app.metrics
    return reply.type(registry.contentType).send(await registry.metrics())
  })
}
