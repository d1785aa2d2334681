import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import secureJson from 'secure-json-parse'
import { ProblemError } from '../errors.js'

/**
 * What a request body may be: JSON, uncompressed, at most `MAX_JSON_DEPTH` levels deep, free of
 * prototype-poisoning keys. A route that takes no body ignores an empty one whatever its
 * Content-Type says (clients that send `Content-Type: application/json` on every POST).
 */

/**
 * How deeply a request body may nest arrays and objects (the body itself is level 1). Deeper
 * documents are refused before anything else looks at them: serialising one overflows the
 * stack, and a PHP worker decodes a payload only to 512 levels.
 */
export const MAX_JSON_DEPTH = 64

/** Whether `value` nests arrays and objects more than `max` levels deep; no recursion. */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]]
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [node, depth] = next
    if (node === null || typeof node !== 'object') continue
    if (depth > max) return true
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1])
    }
  }
  return false
}

const PARSE_OPTIONS = { protoAction: 'error', constructorAction: 'error' } as const

export const UNSUPPORTED_DETAIL = 'Send the body as application/json.'

export default fp(
  async function jsonBody(app: FastifyInstance) {
    // Only JSON bodies: without this a text/plain body would reach validation instead of a 415.
    app.removeContentTypeParser('text/plain')
    app.removeContentTypeParser('application/json')
    app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, text, done) => {
      const body = String(text)
      if (body.length === 0) {
        if (request.routeOptions.schema?.body === undefined) done(null, undefined)
        else
          done(
            new ProblemError(
              'INVALID_JSON',
              'The body is empty but Content-Type says application/json.',
            ),
          )
        return
      }
      try {
        done(null, secureJson.parse(body, undefined, PARSE_OPTIONS))
      } catch (error) {
        // The parser's reason: a syntax error's place, or a `__proto__` key it refuses.
        done(
          new ProblemError(
            'INVALID_JSON',
            `The body is not valid JSON: ${(error as Error).message}.`,
          ),
        )
      }
    })

    // Any other type: refused, unless the route takes no body and there is none (a client's
    // default Content-Type on a bare POST), which Fastify would refuse too.
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (request, bytes, done) => {
      if (bytes.length === 0 && request.routeOptions.schema?.body === undefined) {
        done(null, undefined)
      } else {
        done(new ProblemError('UNSUPPORTED_MEDIA_TYPE', UNSUPPORTED_DETAIL))
      }
    })

    // Bodies are read as they come: a compressed one would reach the JSON parser as garbage.
    app.addHook('preParsing', (request, _reply, payload, done) => {
      const encoding = request.headers['content-encoding']
      if (encoding === undefined || encoding.trim().toLowerCase() === 'identity') {
        done(null, payload)
        return
      }
      done(
        new ProblemError(
          'UNSUPPORTED_MEDIA_TYPE',
          `Content-Encoding ${encoding} is not supported: send the body uncompressed.`,
          { headers: { 'accept-encoding': 'identity' } },
        ),
      )
    })

    app.addHook('preValidation', (request, _reply, done) => {
      if (request.body !== undefined && nestsDeeperThan(request.body, MAX_JSON_DEPTH)) {
        done(
          new ProblemError(
            'VALIDATION_FAILED',
            `The body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels.`,
          ),
        )
      } else done()
    })
  },
  { name: 'jobgate-json-body' },
)
