import { hash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { invalidHeader } from './errors.js'

/**
 * Idempotency keys, after draft-ietf-httpapi-idempotency-key-header: `Idempotency-Key`, else
 * `X-Request-ID`. A key is 1–255 visible ASCII characters other than `"` and `\`, sent bare or
 * as a structured-field string; `"abc"` and `abc` are the same key.
 */

const KEY = /^[\x21\x23-\x5B\x5D-\x7E]{1,255}$/
const QUOTED = /^"(.*)"$/s

export interface IdempotencyKey {
  key: string
  header: 'idempotency-key' | 'x-request-id'
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value
}

/** The request's idempotency key, null when it sends none; a malformed key is a 400. */
export function idempotencyKeyOf(headers: IncomingHttpHeaders): IdempotencyKey | null {
  const explicit = single(headers['idempotency-key'])
  const header = explicit === undefined ? 'x-request-id' : 'idempotency-key'
  const raw = explicit ?? single(headers['x-request-id'])
  if (raw === undefined) return null
  const key = QUOTED.exec(raw)?.[1] ?? raw
  if (!KEY.test(key)) {
    const shown = header === 'idempotency-key' ? 'Idempotency-Key' : 'X-Request-ID'
    throw invalidHeader(
      'IDEMPOTENCY_KEY_INVALID',
      header,
      `${shown} must be 1 to 255 visible ASCII characters other than '"' and '\\', bare or in double quotes (got ${key.length} bytes)`,
      'is not a valid idempotency key',
    )
  }
  return { key, header }
}

/** JSON with object keys in sorted order, so equal values always serialise the same way. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null'
  if (Array.isArray(value)) {
    let out = '['
    for (let i = 0; i < value.length; i++) out += (i > 0 ? ',' : '') + canonicalJson(value[i])
    return `${out}]`
  }
  const object = value as Record<string, unknown>
  let out = '{'
  for (const key of Object.keys(object).sort()) {
    const member = object[key]
    if (member === undefined) continue
    out += `${out.length > 1 ? ',' : ''}${JSON.stringify(key)}:${canonicalJson(member)}`
  }
  return `${out}}`
}

/** The request fingerprint a key is bound to: SHA-256 of the canonical validated body. */
export function fingerprint(body: unknown): string {
  return hash('sha256', canonicalJson(body), 'hex')
}
