import { createHash } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route answers `If-None-Match` (openapi.yaml lists a `304` for it). */
    conditional?: boolean
  }
}

/** Whether an `If-None-Match` value names `etag` (weak or strong, one of a list, or `*`). */
function matches(ifNoneMatch: string, etag: string): boolean {
  return ifNoneMatch
    .split(',')
    .map((tag) => tag.trim())
    .some((tag) => tag === '*' || tag.replace(/^W\//, '') === etag)
}

/**
 * Conditional GETs for pollers: a `200` of a route that answers them carries an `ETag` (a hash
 * of its body, so any change shows) and `Cache-Control: no-cache`; a request whose
 * `If-None-Match` names it gets `304` without the body. The answer is still read from Redis:
 * what this saves is the transfer and the client's parsing. A `HEAD` (Fastify's twin of the
 * `GET`) gets the same headers and the same `304`.
 */
export default fp(
  async function conditionalGet(app: FastifyInstance) {
    app.addHook('onSend', async (request, reply, payload) => {
      if (
        reply.statusCode !== 200 ||
        (request.method !== 'GET' && request.method !== 'HEAD') ||
        request.routeOptions.config?.conditional !== true ||
        (typeof payload !== 'string' && !Buffer.isBuffer(payload))
      ) {
        return payload
      }
      const etag = `"${createHash('sha1').update(payload).digest('base64url')}"`
      reply.header('etag', etag).header('cache-control', 'no-cache')
      const wanted = request.headers['if-none-match']
      if (wanted === undefined || !matches(wanted, etag)) return payload
      reply.code(304).removeHeader('content-type').removeHeader('content-length')
      // A 304 may carry a Content-Length only if it is the 200's (RFC 9110, 8.6). A GET's has
      // none; a HEAD's is the 200's, set by Fastify's HEAD handler from the payload it drops.
      return request.method === 'HEAD' ? payload : null
    })
  },
  { name: 'jobgate-conditional-get' },
)
