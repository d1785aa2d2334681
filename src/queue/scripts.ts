import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ChainableCommander, Cluster, Redis } from 'ioredis'
import { LUA_DIR } from '../paths.js'

/**
 * The protocol scripts in `lua/`, registered on a client with `defineCommand` (EVALSHA, falling
 * back to EVAL after a NOSCRIPT reply). A file is named `<name>-<number of keys>.lua`; a line
 * `-- @include <piece>` in it stands for `lua/include/<piece>.lua` (PROTOCOL.md, "Shared pieces").
 */

export const SCRIPT_NAMES = [
  'enqueue',
  'status',
  'reserve',
  'release',
  'ack',
  'fail',
  'retry',
  'heartbeat',
  'cancel',
  'cancel-waiting',
  'dead-list',
  'job-list',
  'redrive',
  'purge',
  'counts',
  'pause',
  'delete-queue',
  'admit-queue',
  'rate-limit',
] as const
export type ScriptName = (typeof SCRIPT_NAMES)[number]
export type RedisClient = Redis | Cluster
type ScriptArg = string | number

interface ScriptSource {
  name: ScriptName
  numberOfKeys: number
  lua: string
}

const FILE_NAME = /^([a-z][a-z-]*)-(\d+)\.lua$/
const INCLUDE_LINE = /^-- @include (.*)$/gm
const PIECE_NAME = /^[a-z][a-z-]*$/

/** A script's text with each `-- @include <piece>` line replaced by that piece, once each. */
export function withIncludes(lua: string, dir: string, file: string): string {
  const seen = new Set<string>()
  return lua.replace(INCLUDE_LINE, (_line, piece: string) => {
    if (!PIECE_NAME.test(piece)) throw new Error(`jobgate: ${file}: bad include name '${piece}'`)
    if (seen.has(piece)) throw new Error(`jobgate: ${file}: '${piece}' is included twice`)
    seen.add(piece)
    let text: string
    try {
      text = readFileSync(join(dir, 'include', `${piece}.lua`), 'utf8')
    } catch {
      throw new Error(`jobgate: ${file}: no include ${piece} (lua/include/${piece}.lua)`)
    }
    if (/^-- @include /m.test(text)) throw new Error(`jobgate: include ${piece} includes another`)
    return text.endsWith('\n') ? text.slice(0, -1) : text
  })
}

function isScriptName(name: string): name is ScriptName {
  return (SCRIPT_NAMES as readonly string[]).includes(name)
}

function loadSources(dir: string): Map<ScriptName, ScriptSource> {
  const sources = new Map<ScriptName, ScriptSource>()
  for (const file of readdirSync(dir)) {
    const match = FILE_NAME.exec(file)
    if (!match?.[1] || !match[2] || !isScriptName(match[1])) continue
    sources.set(match[1], {
      name: match[1],
      numberOfKeys: Number(match[2]),
      lua: withIncludes(readFileSync(join(dir, file), 'utf8'), dir, file),
    })
  }
  const missing = SCRIPT_NAMES.filter((name) => !sources.has(name))
  if (missing.length > 0)
    throw new Error(`jobgate: missing Lua scripts in ${dir}: ${missing.join(', ')}`)
  return sources
}

const sources = loadSources(LUA_DIR)

/** The text Redis runs for a script, its includes in place. */
export function scriptText(name: ScriptName): string {
  const source = sources.get(name)
  if (source === undefined) throw new Error(`jobgate: no script ${name}`)
  return source.lua
}

function commandName(name: ScriptName): string {
  return `jobgate_${name.replaceAll('-', '_')}`
}

/** Registers every protocol script on the client. Call once per client. */
export function defineScripts(client: RedisClient): void {
  for (const source of sources.values()) {
    client.defineCommand(commandName(source.name), {
      numberOfKeys: source.numberOfKeys,
      lua: source.lua,
    })
  }
}

type ScriptCommand = (...args: ScriptArg[]) => unknown

function scriptCommand(
  target: RedisClient | ChainableCommander,
  name: ScriptName,
  keys: readonly string[],
): ScriptCommand {
  const source = sources.get(name)
  if (source === undefined || keys.length !== source.numberOfKeys) {
    throw new Error(
      `jobgate: script ${name} takes ${source?.numberOfKeys} keys, got ${keys.length}`,
    )
  }
  const command = (target as unknown as Record<string, ScriptCommand | undefined>)[
    commandName(name)
  ]
  if (command === undefined) throw new Error(`jobgate: scripts are not defined on this client`)
  return command
}

/** Runs one protocol script. `keys` must have exactly the script's number of keys. */
export function runScript(
  client: RedisClient,
  name: ScriptName,
  keys: readonly string[],
  args: readonly ScriptArg[],
): Promise<unknown> {
  return scriptCommand(client, name, keys).call(client, ...keys, ...args) as Promise<unknown>
}

/** Adds one protocol script call to a pipeline (MULTI-less: each script is atomic on its own). */
export function queueScript(
  pipeline: ChainableCommander,
  name: ScriptName,
  keys: readonly string[],
  args: readonly ScriptArg[],
): void {
  scriptCommand(pipeline, name, keys).call(pipeline, ...keys, ...args)
}
