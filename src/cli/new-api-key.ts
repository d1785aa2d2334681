import { KEY_NAME_PATTERN, newApiKey, SCOPES, type Scope } from '../auth.js'

/**
 * Prints a new random API key (once: only its hash is ever stored) and the entry to add to
 * API_KEYS or API_KEYS_FILE.  Usage: new-api-key <name> <scope>[+<scope>…]
 */
const [name = '', scopeList = ''] = process.argv.slice(2)
const scopes = scopeList.split('+').filter(Boolean)
const unknown = scopes.filter((scope) => !(SCOPES as readonly string[]).includes(scope))
if (!KEY_NAME_PATTERN.test(name) || scopes.length === 0 || unknown.length > 0) {
  process.stderr.write(
    `usage: new-api-key <name> <scope>[+<scope>…]\n  name: [A-Za-z0-9_.-]{1,64}; scopes: ${SCOPES.join(', ')}\n`,
  )
  process.exit(64)
}
const { key, entry } = newApiKey(name, scopes as Scope[])
process.stdout.write(
  `key (give it to the client; it is not stored):\n  ${key}\nentry (add it to API_KEYS or API_KEYS_FILE):\n  ${entry}\n`,
)
