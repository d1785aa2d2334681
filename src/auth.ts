import { hash, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * API keys. The gateway stores only each key's SHA-256; a presented key is hashed and compared
 * with every stored hash in constant time, so neither the comparison nor which entry matched
 * shows in the response time.
 */

export const SCOPES = ['produce', 'read', 'work', 'admin'] as const
export type Scope = (typeof SCOPES)[number]

export interface ApiKey {
  /** Who the key belongs to; scopes idempotency keys and rate limits. */
  name: string
  /** `admin` grants every scope. */
  scopes: ReadonlySet<Scope>
  sha256: Buffer
}

export interface Identity {
  name: string
  scopes: ReadonlySet<Scope>
  /** The SHA-256 of the key presented; absent for the open gateway's caller. */
  sha256?: Buffer
}

export const KEY_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/
const HASH_PATTERN = /^[0-9a-f]{64}$/
const EMPTY_KEY_SHA256 = sha256Hex('')

function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex')
}

export function sha256(text: string): Buffer {
  return hash('sha256', text, 'buffer')
}

const BEYOND_ASCII = /[\u0080-\u00ff]/

/**
 * The SHA-256 of a key as a header brought it: Node reads header bytes as Latin-1, so a key
 * with characters beyond ASCII is hashed over the bytes sent (its UTF-8, as its entry's digest
 * was made), not over that reading of them.
 */
function sha256OfHeader(value: string): Buffer {
  return BEYOND_ASCII.test(value)
    ? hash('sha256', Buffer.from(value, 'latin1'), 'buffer')
    : sha256(value)
}

/**
 * Parses key entries `<name>:<scope>[+<scope>…]:<sha256 hex>`, one per line or separated by
 * commas; blank lines and `#` comments are skipped. Throws a message naming the bad entry,
 * also when it repeats a key of `earlier` entries or of this text (a repeated key would always
 * identify as its first entry, whatever scopes the second gives it), or a name with other
 * scopes (a name may have several keys, for a rotation, but one set of scopes).
 */
export function parseApiKeys(text: string, earlier: readonly ApiKey[] = []): ApiKey[] {
  const keys: ApiKey[] = []
  // A comment runs to the end of its line, commas and all: a commented-out line holds no key.
  const entries = text
    .split('\n')
    .flatMap((line) => line.replace(/#.*/, '').split(','))
    .map((entry) => entry.trim())
    .filter(Boolean)
  for (const [index, entry] of entries.entries()) {
    if (!entry.includes(':')) {
      // Perhaps a key pasted in place of its entry: never repeated back.
      throw new Error(
        `entry ${index + 1} must be <name>:<scopes>:<sha256 hex>, the entry of a key, not the key itself (npm run new-api-key prints both)`,
      )
    }
    const [name = '', scopeList = '', hash = '', ...extra] = entry.split(':')
    const where = `entry ${index + 1} ("${name}")`
    if (extra.length > 0 || hash === '' || !KEY_NAME_PATTERN.test(name)) {
      throw new Error(
        `${where} must be <name>:<scopes>:<sha256 hex> with a name of [A-Za-z0-9_.-]{1,64}`,
      )
    }
    const scopes = scopeList.split('+')
    const unknown = scopes.filter((scope) => !(SCOPES as readonly string[]).includes(scope))
    if (unknown.length > 0) {
      const named = unknown.map((scope) => `"${scope}"`).join(', ')
      throw new Error(`${where} has unknown scopes ${named}; use ${SCOPES.join(', ')} joined by +`)
    }
    if (!HASH_PATTERN.test(hash.toLowerCase())) {
      throw new Error(`${where} must end with the key's SHA-256 as 64 hex digits`)
    }
    if (hash.toLowerCase() === EMPTY_KEY_SHA256) {
      throw new Error(`${where} has the SHA-256 of an empty key (was the key's variable unset?)`)
    }
    const sha256 = Buffer.from(hash, 'hex')
    const seen = [...earlier, ...keys]
    const namesake = seen.find((key) => key.name === name)
    if (namesake && !sameScopes(namesake.scopes, scopes)) {
      throw new Error(
        `${where} repeats the name ${name} with other scopes than ${[...namesake.scopes].join('+')}: the entries of one name are one client's keys (old and new during a rotation) and have its scopes`,
      )
    }
    const twin = seen.find((key) => key.sha256.equals(sha256))
    if (twin) throw new Error(`${where} has the same key as ${twin.name}; give each key one entry`)
    keys.push({ name, scopes: new Set(scopes as Scope[]), sha256 })
  }
  return keys
}

function sameScopes(scopes: ReadonlySet<Scope>, others: readonly string[]): boolean {
  return scopes.size === new Set(others).size && others.every((scope) => scopes.has(scope as Scope))
}

export class KeyRing {
  private readonly replaced = new Set<() => void>()

  constructor(private keys: readonly ApiKey[]) {}

  /**
   * Swaps in a new set of keys (a reload); requests already identified keep their identity,
   * and what outlives a request (an event stream) asks `stillAllows` on `onReplace`.
   * A ring with keys is never opened this way: that takes a restart without any.
   */
  replace(keys: readonly ApiKey[]): void {
    if (keys.length === 0 && !this.open) throw new Error('no keys: the gateway would run open')
    this.keys = keys
    for (const listener of this.replaced) listener()
  }

  /** Calls `listener` after each replace; returns the function that stops it. */
  onReplace(listener: () => void): () => void {
    this.replaced.add(listener)
    return () => this.replaced.delete(listener)
  }

  /** Whether the keys now held still give `identity` the scope (its key not revoked, rescoped). */
  stillAllows(identity: Identity, scope: Scope): boolean {
    const { sha256 } = identity
    if (sha256 === undefined) return this.open
    const key = this.keys.find((candidate) => candidate.sha256.equals(sha256))
    return key !== undefined && allows({ name: key.name, scopes: key.scopes }, scope)
  }

  get open(): boolean {
    return this.keys.length === 0
  }

  /** The key's owner, or null. Every stored hash is compared, whatever matches first. */
  identify(presented: string): Identity | null {
    if (presented === '') return null
    const digest = sha256OfHeader(presented)
    let found: ApiKey | null = null
    for (const key of this.keys) {
      if (timingSafeEqual(digest, key.sha256) && found === null) found = key
    }
    return found && { name: found.name, scopes: found.scopes, sha256: found.sha256 }
  }
}

export function allows(identity: Identity, scope: Scope): boolean {
  return identity.scopes.has(scope) || identity.scopes.has('admin')
}

/** A new random key and its configuration entry. */
export function newApiKey(name: string, scopes: readonly Scope[]): { key: string; entry: string } {
  const key = `jg_${randomBytes(32).toString('base64url')}`
  return { key, entry: `${name}:${scopes.join('+')}:${sha256(key).toString('hex')}` }
}
