import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { LUA_DIR, ROOT } from '../src/paths.js'
import { SCRIPT_NAMES, scriptText, withIncludes } from '../src/queue/scripts.js'

function luaDir(pieces: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'jobgate-lua-'))
  mkdirSync(join(dir, 'include'))
  for (const [name, text] of Object.entries(pieces)) {
    writeFileSync(join(dir, 'include', `${name}.lua`), text)
  }
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('an include line becomes the piece, its last newline dropped', async (t) => {
  const dir = luaDir({ two: '--[[ two ]]\nlocal function two() return 2 end\n' })
  t.equal(
    withIncludes('-- head\n-- @include two\nreturn two()\n', dir, 'x-0.lua'),
    '-- head\n--[[ two ]]\nlocal function two() return 2 end\nreturn two()\n',
  )
  t.equal(
    withIncludes('--  @include two\nreturn 1\n', dir, 'x-0.lua'),
    '--  @include two\nreturn 1\n',
  )
})

t.test('a bad include stops the load, naming the script and the piece', async (t) => {
  const dir = luaDir({ two: 'local function two() return 2 end\n', one: '-- @include two\n' })
  const cases: [string, RegExp][] = [
    ['-- @include three\n', /x-0\.lua: no include three \(lua\/include\/three\.lua\)/],
    ['-- @include ../two\n', /x-0\.lua: bad include name '\.\.\/two'/],
    ['-- @include two \n', /x-0\.lua: bad include name 'two '/],
    ['-- @include two\n-- @include two\n', /x-0\.lua: 'two' is included twice/],
    ['-- @include one\n', /include one includes another/],
  ]
  for (const [lua, message] of cases) {
    t.throws(() => withIncludes(lua, dir, 'x-0.lua'), { message }, JSON.stringify(lua))
  }
})

t.test(
  'every script as sent to Redis has its pieces in place; every piece has a header',
  async (t) => {
    for (const name of SCRIPT_NAMES) t.notMatch(scriptText(name), /^-- @include/m, name)
    for (const file of readdirSync(join(LUA_DIR, 'include'))) {
      const piece = file.replace(/\.lua$/, '')
      t.match(
        readFileSync(join(LUA_DIR, 'include', file), 'utf8'),
        new RegExp(`^--\\[\\[\\n  include ${piece} — `),
        `${file} opens with its header`,
      )
    }
    t.match(scriptText('reserve'), /^local function wake\(wake_key, n\)$/m)
  },
)

t.test('the PHP worker sends Redis the same text as the gateway (one SHA-1 each)', async (t) => {
  const printed = execFileSync(
    'php',
    [
      '-r',
      `require $argv[1];
       $library = Jobgate\\Worker\\Transport\\Redis\\ScriptLibrary::fromDirectory($argv[2]);
       foreach (array_keys(Jobgate\\Worker\\Transport\\Redis\\ScriptLibrary::REQUIRED) as $name) {
           echo $name, ' ', $library->get($name)->sha1, "\\n";
       }`,
      join(ROOT, 'php-worker/autoload.php'),
      LUA_DIR,
    ],
    { encoding: 'utf8' },
  )
  const fromPhp = Object.fromEntries(
    printed
      .trim()
      .split('\n')
      .map((line) => line.split(' ')),
  )
  t.strictSame(Object.keys(fromPhp).sort(), ['ack', 'fail', 'heartbeat', 'reserve', 'retry'])
  for (const [name, sha] of Object.entries(fromPhp)) {
    const text = scriptText(name as (typeof SCRIPT_NAMES)[number])
    t.equal(sha, createHash('sha1').update(text).digest('hex'), name)
  }
})
