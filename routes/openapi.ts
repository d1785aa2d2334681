import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import type { Contract } from '../src/contract.js'
import { OPENAPI_PATH } from '../src/paths.js'

export interface OpenApiRoutesOptions {
  contract: Contract
}

/** The contract this gateway serves, as it was read at boot, for client generators. */
export default async function openApiRoutes(
  app: FastifyInstance,
  { contract }: OpenApiRoutesOptions,
) {
  const text = readFileSync(OPENAPI_PATH, 'utf8')
  app.get('/openapi.yaml', contract.route('getOpenApi'), async (_request, reply) =>
    reply.type('application/yaml; charset=utf-8').send(text),
  )
}
