import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { type ApiKey, allows, type Identity, KeyRing, SCOPES, type Scope } from '../auth.js'
import { ProblemError } from '../errors.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent the request; null when its key is missing or unknown. */
    identity: Identity | null
  }
  interface FastifyContextConfig {
    /** The API-key scope the route requires (from openapi.yaml); null = public. */
    scope?: Scope | null
  }
}

export interface AuthOptions {
  apiKeys: readonly ApiKey[]
}

/** With no keys configured every caller is this one client (the gateway then runs open). */
export const ANONYMOUS: Identity = { name: 'anonymous', scopes: new Set(SCOPES) }

const CHALLENGE = 'Bearer realm="jobgate"'

function presentedKey(request: FastifyRequest): string | null {
  const authorization = request.headers.authorization
  if (typeof authorization === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
    if (match?.[1]) return match[1]
  }
  const header = request.headers['x-api-key']
  return typeof header === 'string' && header !== '' ? header : null
}

/**
 * API keys with scopes. Identity is resolved first (rate limits are counted per identity);
 * each scoped route then checks it, after its rate limit, so failed attempts are throttled too.
 */
export default fp(
  async function auth(app: FastifyInstance, { apiKeys }: AuthOptions) {
    const ring = new KeyRing(apiKeys)
    app.decorateRequest('identity', null)

    app.addHook('onRequest', (request, _reply, done) => {
      if (ring.open) {
        request.identity = ANONYMOUS
      } else {
        const key = presentedKey(request)
        request.identity = key === null ? null : ring.identify(key)
      }
      done()
    })

    const authorize =
      (scope: Scope): onRequestHookHandler =>
      (request, _reply, done) => {
        const identity = request.identity
        if (identity === null) {
          const missing = presentedKey(request) === null
          const challenge = missing ? CHALLENGE : `${CHALLENGE}, error="invalid_token"`
          return done(
            new ProblemError(
              missing ? 'UNAUTHORIZED' : 'INVALID_API_KEY',
              missing
                ? 'Send an API key as "Authorization: Bearer <key>" or "X-API-Key: <key>".'
                : 'The API key is not one of this gateway.',
              { headers: { 'www-authenticate': challenge } },
            ),
          )
        }
        if (!allows(identity, scope)) {
          return done(
            new ProblemError(
              'FORBIDDEN',
              `The key "${identity.name}" has the scopes ${[...identity.scopes].join(', ')}; this needs ${scope}.`,
            ),
          )
        }
        done()
      }

    app.addHook('onRoute', (route) => {
      const scope = route.config?.scope
      if (!scope) return
      const hooks = route.onRequest
      const check = authorize(scope)
      route.onRequest =
        hooks === undefined ? [check] : Array.isArray(hooks) ? [...hooks, check] : [hooks, check]
    })
  },
  { name: 'jobgate-auth' },
)
