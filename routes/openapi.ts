import { createHash } from 'node:crypto'
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
  const etag = `"${createHash('sha256').update(text).digest('base64url').slice(0, 27)}"`

  app.get('/openapi.yaml', contract.route('getOpenApi'), async (request, reply) => {
    reply.header('etag', etag).header('cache-control', 'no-cache')
    const wanted = request.headers['if-none-match']
    if (wanted?.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)) {
      return reply.code(304).send()
    }
    return reply.type('application/yaml; charset=utf-8').send(text)
  })
}
