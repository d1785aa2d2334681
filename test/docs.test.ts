import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../src/config.js'
import { loadOpenApi } from '../src/contract.js'
import { problemCodes, problemStatus } from '../src/errors.js'
import { LUA_DIR, ROOT } from '../src/paths.js'
import { type ScriptName, scriptText } from '../src/queue/scripts.js'

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
const protocol = readFileSync(join(ROOT, 'PROTOCOL.md'), 'utf8')

function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n## ${heading}\n`)
  if (start < 0) return ''
  const end = markdown.indexOf('\n## ', start + 1)
  return markdown.slice(start, end < 0 ? undefined : end)
}

t.test('the quick start has exactly two commands: stack up and the test suite', async (t) => {
  const quickStart = section(readme, 'Quick start')
  const block = /```sh\n([\s\S]*?)```/.exec(quickStart)?.[1] ?? ''
  const commands = block
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter(Boolean)
  t.strictSame(commands, ['./dev up', './dev test'])
  t.match(
    readFileSync(join(ROOT, '.ci/run'), 'utf8'),
    /\n(exec )?\.\/dev test\n/,
    '.ci/run runs it',
  )
})

t.test('the README configuration table lists exactly the variables config.ts reads', async (t) => {
  const read = new Set<string>()
  loadConfig(
    new Proxy({} as Record<string, string | undefined>, {
      get: (_target, name) => {
        read.add(String(name))
        return undefined
      },
    }),
  )
  const table = section(readme, 'Configuration')
  const documented = new Set([...table.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]))
  t.ok(read.size > 5)
  t.strictSame([...read].sort(), [...documented].sort())
})

t.test('the README error table lists every problem code with its status', async (t) => {
  const table = section(readme, 'Errors')
  for (const code of problemCodes()) {
    t.match(table, new RegExp(`\\| ${problemStatus(code)} \\| \`${code}\` \\|`), code)
  }
})

t.test('the README API table lists every route of openapi.yaml', async (t) => {
  const table = section(readme, 'HTTP API')
  for (const [path, item] of Object.entries(loadOpenApi().paths)) {
    for (const method of Object.keys(item)) {
      if (['get', 'post', 'put', 'patch', 'delete'].includes(method)) {
        t.match(table, `\`${method.toUpperCase()} ${path}\``, `${method} ${path}`)
      }
    }
  }
})

t.test(
  'PROTOCOL.md lists every shared piece of lua/include with the scripts using it',
  async (t) => {
    const table = section(protocol, 'Shared pieces')
    const pieces = readdirSync(join(LUA_DIR, 'include')).map((f) => f.replace(/\.lua$/, ''))
    t.ok(pieces.length > 0)
    for (const piece of pieces) {
      const row = table.split('\n').find((line) => line.startsWith(`| \`${piece}\` |`)) ?? ''
      t.ok(row, `${piece} has a row`)
      const users = readdirSync(LUA_DIR)
        .filter((f) => f.endsWith('.lua'))
        .filter((f) => readFileSync(join(LUA_DIR, f), 'utf8').includes(`\n-- @include ${piece}\n`))
        .map((f) => f.replace(/-\d+\.lua$/, ''))
      t.ok(users.length > 0, `${piece} is used`)
      const usedBy = (row.split('|').at(-2) ?? '').split(',').map((name) => name.trim())
      t.strictSame(usedBy, users.sort(), `${piece}: the scripts that include it`)
    }
  },
)

t.test('PROTOCOL.md documents every Lua script and its keys', async (t) => {
  for (const file of readdirSync(LUA_DIR).filter((f) => f.endsWith('.lua'))) {
    const keys = Number(/-(\d+)\.lua$/.exec(file)?.[1])
    const lua = readFileSync(join(LUA_DIR, file), 'utf8')
    const header = /^--\[\[([\s\S]*?)\]\]/.exec(lua)?.[1] ?? ''
    t.ok(header, `${file} opens with a header comment`)
    t.equal(header.match(/^\s*KEYS\[\d+\]/gm)?.length, keys, `${file}: header lists ${keys} KEYS`)
    t.match(header, /^\s*ARGV/m, `${file}: header lists its arguments (or says none)`)
    t.match(header, /^\s*Returns/m, `${file}: header lists its replies`)
    const start = protocol.indexOf(`### \`${file}\``)
    t.ok(start >= 0, `PROTOCOL.md has a section for ${file}`)
    const end = protocol.indexOf('\n### ', start + 1)
    const doc = protocol.slice(start, end < 0 ? undefined : end)
    for (let i = 1; i <= keys; i++) t.match(doc, `\`KEYS[${i}]\``, `${file}: KEYS[${i}] documented`)
    t.notMatch(doc, `\`KEYS[${keys + 1}]\``, `${file}: no extra KEYS documented`)
    const text = scriptText(file.replace(/-\d+\.lua$/, '') as ScriptName)
    for (const reply of new Set(text.match(/return \{'([A-Z_]+)'/g)?.map((r) => r.slice(9, -1)))) {
      t.match(doc, `'${reply}'`, `${file}: reply ${reply} documented`)
    }
  }
})
