import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The package root: the nearest folder above this module that holds `openapi.yaml` and `lua/`.
 * Resolved once, so the same code finds its contract files from `src/` and from `dist/src/`.
 */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(join(dir, 'openapi.yaml')) && existsSync(join(dir, 'lua'))) return dir
    const parent = dirname(dir)
    if (parent === dir)
      throw new Error('jobgate: cannot find openapi.yaml and lua/ above this module')
    dir = parent
  }
}

export const ROOT = findRoot()
export const OPENAPI_PATH = join(ROOT, 'openapi.yaml')
export const LUA_DIR = join(ROOT, 'lua')
