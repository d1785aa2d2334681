import type { IncomingHttpHeaders } from 'node:http'

/** The `Preference-Applied` value of an answer that honoured `Prefer: return=minimal`. */
export const RETURN_MINIMAL = 'return=minimal'

const QUOTED = /^"(.*)"$/

/**
 * Whether the request asks, with RFC 7240's `Prefer` header, for a minimal answer
 * (`return=minimal`). As the RFC says, only the first `return` preference counts, and
 * preferences the gateway does not know are ignored, never an error.
 */
export function prefersMinimal(headers: IncomingHttpHeaders): boolean {
  const prefer = headers.prefer
  if (prefer === undefined) return false
  // Repeated Prefer headers are one list, in order (Node joins them with ", ").
  const preferences = (Array.isArray(prefer) ? prefer.join(',') : prefer).split(',')
  for (const preference of preferences) {
    const [name = '', value = ''] = (preference.split(';')[0] ?? '').split('=')
    if (name.trim().toLowerCase() !== 'return') continue
    return value.trim().replace(QUOTED, '$1').toLowerCase() === 'minimal'
  }
  return false
}
