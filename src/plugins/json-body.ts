import { isUtf8 } from 'node:buffer'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import secureJson from 'secure-json-parse'
import { ProblemError } from '../errors.js'

/**
 * What a request body may be: JSON in UTF-8, uncompressed, at most `MAX_JSON_DEPTH` levels deep,
 * free of prototype-poisoning keys, and made of values every worker reads back as sent (Unicode
 * text, finite numbers, integers a double holds exactly). A route that takes no body ignores an
 * empty one whatever its Content-Type says (clients that send `Content-Type: application/json`
 * on every POST) and takes `{}`, but refuses any other; a request for no route is answered 404
 * without its body being looked at.
 */

/**
 * How deeply a request body may nest arrays and objects (the body itself is level 1). Deeper
 * documents are refused before they are parsed: parsing one takes the gateway's CPU (a megabyte
 * of `[` is half a second), serialising one overflows the stack, and a PHP worker decodes a
 * payload only to 512 levels.
 */
const MAX_JSON_DEPTH = 64

/** The index of the quote that ends the JSON string whose opening quote is at `start`. */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === BACKSLASH) i++
    else if (c === QUOTE) return i
  }
  return text.length
}

/** Whether the JSON text nests arrays and objects more than `max` levels deep (strings skipped). */
function nestsDeeperThan(text: string, max: number): boolean {
  let depth = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) i = stringEnd(text, i)
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > max) return true
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--
  }
  return false
}

const [QUOTE, BACKSLASH, OPEN_BRACE, CLOSE_BRACE, OPEN_BRACKET, CLOSE_BRACKET] = [
  34, 92, 123, 125, 91, 93,
]

/**
 * The text may hold what JSON.parse turns into something else than was sent: a `\uD800`-style
 * escape (a lone surrogate, no Unicode text) or a number past the range of a double (`1e400`
 * parses as Infinity, stored as null). Past it lies a three-digit exponent, or a long run of
 * digits: 309 of them alone, over 200 before a two-digit exponent (`1000…0e99`). Most bodies
 * have none of these, and skip the walk. A run is tried from its first digit only: tried from
 * each, a body of 199-digit runs cost 200 steps a byte (0.4 s of CPU for 1 MiB).
 */
const MAY_NOT_ROUND_TRIP = /\\u[dD][89a-fA-F]|[eE][+]?[0-9]{3}|(?<![0-9])[0-9]{200}/

/** Why a parsed body would not reach a worker as sent, or null; no recursion. */
function unfaithful(value: unknown): string | null {
  const stack: unknown[] = [value]
  while (stack.length > 0) {
    const node = stack.pop()
    if (typeof node === 'number' && !Number.isFinite(node)) {
      return 'it has a number too large for a double'
    }
    if (typeof node === 'string' && !node.isWellFormed()) {
      return 'it has a string with a lone UTF-16 surrogate escape, which is no Unicode text'
    }
    if (node === null || typeof node !== 'object') continue
    if (Array.isArray(node)) {
      for (const child of node) stack.push(child) // not push(...node): too many arguments
    } else {
      for (const [key, child] of Object.entries(node)) stack.push(key, child)
    }
  }
  return null
}

/** Some integer literal may be past 2^53 (2^53 has 16 digits); `inexactInteger` then looks. */
const MAY_HOLD_A_LONG_INTEGER = /[0-9]{16}/

/**
 * The first integer literal of the (valid JSON) text that a double cannot hold exactly, or
 * null: parsed, it would reach a worker as another number (a 64-bit id, a nanosecond time).
 * Strings are skipped; numbers with a fraction or an exponent are doubles by intent.
 */
function inexactInteger(text: string): string | null {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) i = stringEnd(text, i)
    if (c !== MINUS && (c < ZERO || c > NINE)) continue
    let end = i + 1
    while (end < text.length && NUMBER_CHARS.test(text[end] as string)) end++
    const literal = text.slice(i, end)
    i = end - 1
    if (literal.length < 16 || !/^-?[0-9]+$/.test(literal)) continue
    const value = Number(literal)
    if (!Number.isSafeInteger(value) && BigInt(literal) !== BigInt(value)) return literal
  }
  return null
}

const [MINUS, ZERO, NINE] = [45, 48, 57]
const NUMBER_CHARS = /[0-9eE.+-]/

const PARSE_OPTIONS = { protoAction: 'error', constructorAction: 'error' } as const
const UTF8 = /^utf-?8$/i

export const UNSUPPORTED_DETAIL = 'Send the body as application/json.'

/**
 * A route that takes no body refuses one that says something: a field sent there (a reason for
 * a cancel, say) would be dropped without a word. `{}`, which some clients send on every POST,
 * says nothing.
 */
export const NO_BODY_DETAIL = 'This operation takes no body: send none, or {}.'

/** A route without a body schema (openapi.yaml gives its operation no request body). */
const takesNoBody = (request: FastifyRequest) => request.routeOptions.schema?.body === undefined

function isEmptyObject(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  for (const _ in value) return false
  return true
}

function hasBody(headers: { 'content-length'?: string; 'transfer-encoding'?: string }): boolean {
  return headers['transfer-encoding'] !== undefined || Number(headers['content-length'] ?? 0) > 0
}

/** A media type's parameters (RFC 9110): a name, `=`, a token or a quoted string. */
const PARAMETER = /;\s*([^\s;=]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;]*)/g

/**
 * The `charset` parameter of a Content-Type, unquoted; null when it has none. A parameter's
 * quoted value may hold `;` and `charset=` (`x="a;charset=latin1"`): it says nothing of the body.
 */
export function charsetOf(contentType: string): string | null {
  for (const [, name, value] of contentType.matchAll(PARAMETER)) {
    if (name?.toLowerCase() !== 'charset' || value === undefined) continue
    return value.startsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value
  }
  return null
}

function invalidJson(reason: string): ProblemError {
  return new ProblemError('INVALID_JSON', `The body is not valid JSON: ${reason}.`)
}

export default fp(
  async function jsonBody(app: FastifyInstance) {
    // Only JSON bodies: without this a text/plain body would reach validation instead of a 415.
    app.removeContentTypeParser('text/plain')
    app.removeContentTypeParser('application/json')
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, raw, done) => {
      if (request.is404) return done(null, undefined)
      const bytes = raw as Buffer
      const charset = charsetOf(request.headers['content-type'] ?? '')
      if (charset !== null && !UTF8.test(charset)) {
        return done(
          new ProblemError(
            'UNSUPPORTED_MEDIA_TYPE',
            `Send the body as application/json in UTF-8, not ${charset}.`,
          ),
        )
      }
      if (bytes.length === 0) {
        if (takesNoBody(request)) return done(null, undefined)
        return done(
          new ProblemError(
            'INVALID_JSON',
            'The body is empty but Content-Type says application/json.',
          ),
        )
      }
      if (!isUtf8(bytes)) return done(invalidJson('it is not UTF-8 text'))
      const body = bytes.toString('utf8')
      if (nestsDeeperThan(body, MAX_JSON_DEPTH)) {
        return done(
          new ProblemError(
            'VALIDATION_FAILED',
            `The body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels.`,
          ),
        )
      }
      let value: unknown
      try {
        value = secureJson.parse(body, undefined, PARSE_OPTIONS)
      } catch (error) {
        // The parser's reason: a syntax error's place, or a `__proto__` key it refuses.
        return done(invalidJson((error as Error).message))
      }
      if (takesNoBody(request) && !isEmptyObject(value)) {
        return done(new ProblemError('VALIDATION_FAILED', NO_BODY_DETAIL))
      }
      const reason = MAY_NOT_ROUND_TRIP.test(body) ? unfaithful(value) : null
      if (reason !== null) return done(invalidJson(reason))
      const inexact = MAY_HOLD_A_LONG_INTEGER.test(body) ? inexactInteger(body) : null
      if (inexact !== null) {
        return done(
          invalidJson(
            `it has the integer ${inexact.length > 40 ? `${inexact.slice(0, 40)}…` : inexact}, past 2^53, which a JSON number cannot carry exactly here (it would reach the worker as ${Number(inexact)}); send it as a string`,
          ),
        )
      }
      done(null, value)
    })

    // Any other type: refused, unless the route takes no body and there is none (a client's
    // default Content-Type on a bare POST), which Fastify would refuse too.
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (request, bytes, done) => {
      if (request.is404 || (bytes.length === 0 && takesNoBody(request))) {
        done(null, undefined)
      } else {
        done(new ProblemError('UNSUPPORTED_MEDIA_TYPE', UNSUPPORTED_DETAIL))
      }
    })

    // Bodies are read as they come: a compressed one would reach the JSON parser as garbage.
    app.addHook('preParsing', (request, _reply, payload, done) => {
      const encoding = request.headers['content-encoding']
      if (
        encoding === undefined ||
        encoding.trim().toLowerCase() === 'identity' ||
        !hasBody(request.headers)
      ) {
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
  },
  { name: 'jobgate-json-body' },
)
