import { normalizeIP } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { type ApiKey, allows, type Identity, KeyRing, SCOPES, type Scope } from '../auth.js'
import { ProblemError } from '../errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The API keys in use; `replace` swaps them (SIGHUP). */
    keyRing: KeyRing
  }
  interface FastifyRequest {
    /** Who sent the request; null when its key is missing or unknown. */
    identity: Identity | null
  }
  interface FastifyContextConfig {
    /** The API-key scope the route requires (from openapi.yaml); null = public. */
    scope?: Scope | null
    /** false: the route is outside its scope's rate limit (openapi.yaml's `x-rate-limited`). */
    rateLimited?: boolean
  }
}

export interface AuthOptions {
  apiKeys: readonly ApiKey[]
}

/** With no keys configured every caller is this one client (the gateway then runs open). */
export const ANONYMOUS: Identity = { name: 'anonymous', scopes: new Set(SCOPES) }

const CHALLENGE = 'Bearer realm="jobgate"'

/**
 * The client a request counts against in per-client limits: its API key's name, or its address
 * when the gateway is open or the key is missing or wrong (every caller is then the anonymous
 * identity). IPv6 addresses count by their /64, the block one host is usually given, so a
 * client cannot dodge a limit by moving within it; IPv4-mapped ones count as IPv4.
 */
export function clientOf(request: FastifyRequest): string {
  const { identity } = request
  return identity && identity !== ANONYMOUS
    ? `key:${identity.name}`
    : `ip:${normalizeIP(request.ip, IPV6_CLIENT_PREFIX)}`
}

const IPV6_CLIENT_PREFIX = 64

/**
 * The key the request presents: a Bearer token, else `X-API-Key`. An Authorization header of
 * another form with no `X-API-Key`, or several Authorization headers, present `MALFORMED`, which
 * no key matches: it is refused as a wrong key (`INVALID_API_KEY`), not taken for a missing one.
 */
function presentedKey(request: FastifyRequest): string | null {
  const authorization = request.headers.authorization
  if (typeof authorization === 'string') {
    if (severalAuthorizations(request.raw.rawHeaders)) return MALFORMED
    const match = BEARER.exec(authorization)
    if (match?.[1]) return match[1]
  }
  const header = request.headers['x-api-key']
  if (typeof header === 'string' && header !== '') return header
  return typeof authorization === 'string' && authorization.trim() !== '' ? MALFORMED : null
}

/**
 * Node keeps the first of several Authorization headers and drops the rest; a proxy in front
 * may have read another one, so such a request names no caller for certain.
 */
function severalAuthorizations(raw: string[]): boolean {
  let seen = 0
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]?.length === 13 && raw[i]?.toLowerCase() === 'authorization' && ++seen > 1) {
      return true
    }
  }
  return false
}

const BEARER = /^Bearer +([^\s]+) *$/i
const MALFORMED = ''

/**
 * API keys with scopes. Identity is resolved first (rate limits are counted per identity);
 * each scoped route then checks it, after its rate limit, so failed attempts are throttled too.
 */
export default fp(
  async function auth(app: FastifyInstance, { apiKeys }: AuthOptions) {
    const ring = new KeyRing(apiKeys)
    app.decorate('keyRing', ring)
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
          const key = presentedKey(request)
          const challenge = key === null ? CHALLENGE : `${CHALLENGE}, error="invalid_token"`
          let detail = "The API key is not one of this gateway's."
          if (key === null) {
            detail = 'Send an API key as "Authorization: Bearer <key>" or "X-API-Key: <key>".'
          } else if (key === MALFORMED) {
            detail =
              'The Authorization header is not "Bearer <key>" (one header, one key without spaces).'
          }
          return done(
            new ProblemError(key === null ? 'UNAUTHORIZED' : 'INVALID_API_KEY', detail, {
              headers: { 'www-authenticate': challenge },
            }),
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
