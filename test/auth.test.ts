import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { KeyRing, newApiKey, parseApiKeys, sha256 } from '../src/auth.js'
import { ConfigError, loadConfig } from '../src/config.js'
import { startGateway } from './helpers/gateway.js'

const producer = newApiKey('producer', ['produce'])
const other = newApiKey('other-producer', ['produce'])
const reader = newApiKey('dashboard', ['read'])
const worker = newApiKey('workers', ['work'])
const admin = newApiKey('ops', ['admin'])
const API_KEYS = [producer, other, reader, worker, admin].map((key) => key.entry).join(',')

const bearer = (key: string) => ({ authorization: `Bearer ${key}` })

t.test('key entries: parsed, validated, compared by hash', async (t) => {
  const [key] = parseApiKeys(`# producers\n${producer.entry}\n`)
  t.equal(key?.name, 'producer')
  t.strictSame([...(key?.scopes ?? [])], ['produce'])
  t.strictSame(key?.sha256, sha256(producer.key))
  t.throws(() => parseApiKeys('x:produce'), /entry 1/)
  t.throws(() => parseApiKeys(`x:write:${'0'.repeat(64)}`), /unknown scopes "write"/)
  t.throws(() => parseApiKeys('foo:'), /entry 1 \("foo"\) must be <name>:<scopes>:<sha256 hex>/)
  // A key pasted in place of its entry is not repeated in the message (nor in the log).
  const pasted = newApiKey('k', ['read']).key
  let refusal = ''
  try {
    parseApiKeys(pasted)
  } catch (error) {
    refusal = String(error)
  }
  t.match(refusal, /entry 1 must be <name>:<scopes>:<sha256 hex>, the entry of a key/)
  t.notOk(refusal.includes(pasted), 'the key is not in the message')
  t.throws(() => parseApiKeys(`x::${'0'.repeat(64)}`), /unknown scopes ""/)
  t.throws(() => parseApiKeys(`x y:read:${'0'.repeat(64)}`), /name/)
  t.throws(() => parseApiKeys(`a:read:${'0'.repeat(63)}`), /SHA-256/)
  t.throws(
    () => parseApiKeys(`a:read:${'0'.repeat(64)},a:work:${'1'.repeat(64)}`),
    /entry 2 \("a"\) repeats the name a with other scopes than read/,
  )
  t.throws(
    () => parseApiKeys(`a:read+work:${'0'.repeat(64)},a:read:${'1'.repeat(64)}`),
    /other scopes than read\+work/,
  )
  t.equal(
    parseApiKeys(`a:read+work:${'0'.repeat(64)},a:work+read:${'1'.repeat(64)}`).length,
    2,
    'a name may have two keys with its scopes (a rotation)',
  )
  t.throws(
    () => parseApiKeys(`a:read:${'0'.repeat(64)},b:admin:${'0'.repeat(64)}`),
    /entry 2 \("b"\) has the same key as a/,
    'a second entry for one key would never be the one identified',
  )
  t.throws(
    () => parseApiKeys(`a:read:${'A'.repeat(64)}`, parseApiKeys(`b:read:${'a'.repeat(64)}`)),
    /same key as b/,
    'in either case of hex',
  )
  const ring = new KeyRing(parseApiKeys(API_KEYS))
  t.equal(ring.identify(admin.key)?.name, 'ops')
  t.equal(ring.identify(`${admin.key}x`), null)
  t.equal(ring.identify(''), null)
  ring.replace(parseApiKeys(reader.entry))
  t.equal(ring.identify(admin.key), null, 'a reload drops the keys it no longer holds')
  t.equal(ring.identify(reader.key)?.name, 'dashboard')
  t.throws(() => ring.replace([]), /would run open/, 'a ring with keys is never opened')
  t.equal(ring.open, false)
  const open = new KeyRing([])
  open.replace(parseApiKeys(reader.entry))
  t.equal(open.open, false, 'an open ring may be given keys')
})

t.test('a commented-out line holds no key, commas and all', async (t) => {
  const keys = parseApiKeys(`# off until review: ${admin.entry},${other.entry}
${reader.entry}`)
  t.strictSame(
    keys.map((key) => key.name),
    ['dashboard'],
  )
  t.strictSame(
    parseApiKeys(`${producer.entry}, ${worker.entry} # two on a line`).map((key) => key.name),
    ['producer', 'workers'],
  )
})

t.test('the hash of an empty key is refused, and an empty key matches nothing', async (t) => {
  const empty = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
  t.throws(() => parseApiKeys(`blank:admin:${empty}`), /SHA-256 of an empty key/)
  t.throws(() => parseApiKeys(`blank:admin:${empty.toUpperCase()}`), /SHA-256 of an empty key/)
  const ring = new KeyRing([{ name: 'blank', scopes: new Set(['admin']), sha256: sha256('') }])
  t.equal(ring.identify(''), null, 'what a malformed Authorization presents')
})

t.test('without keys the gateway runs open only on loopback, or when told to', async (t) => {
  t.equal(loadConfig({ HOST: '127.0.0.1' }).apiKeys.length, 0)
  t.equal(loadConfig({ HOST: '::1' }).apiKeys.length, 0)
  // All of 127.0.0.0/8 is loopback, written as IPv4 or IPv4-mapped.
  for (const HOST of ['127.0.0.2', '127.255.0.1', '::FFFF:127.0.0.9', 'localhost']) {
    t.equal(loadConfig({ HOST }).apiKeys.length, 0, HOST)
  }
  for (const HOST of ['128.0.0.1', '::ffff:10.0.0.1', '127.example.com', '::2']) {
    t.throws(() => loadConfig({ HOST }), /API_KEYS must be set when HOST is not a loopback/, HOST)
  }
  t.throws(() => loadConfig({ HOST: '0.0.0.0' }), ConfigError)
  t.throws(
    () => loadConfig({ HOST: '0.0.0.0' }),
    /API_KEYS must be set when HOST is not a loopback address/,
  )
  t.equal(loadConfig({ HOST: '0.0.0.0', ALLOW_UNAUTHENTICATED: 'true' }).allowUnauthenticated, true)
  t.equal(loadConfig({ HOST: '0.0.0.0', API_KEYS: producer.entry }).apiKeys.length, 1)
  t.throws(() => loadConfig({ API_KEYS: 'nonsense' }), /Invalid configuration: API_KEYS entry 1/)
  t.throws(() => loadConfig({ API_KEYS_FILE: '/nonexistent/keys' }), /API_KEYS_FILE cannot be read/)
  const dir = mkdtempSync(join(tmpdir(), 'jobgate-keys-'))
  t.teardown(() => rmSync(dir, { recursive: true }))
  const file = join(dir, 'keys')
  writeFileSync(file, `${reader.entry}\n${producer.entry}\n`)
  t.throws(
    () => loadConfig({ API_KEYS: producer.entry, API_KEYS_FILE: file }),
    /Invalid configuration: API_KEYS_FILE entry 2 \("producer"\) has the same key as producer/,
    'a repeat in the file is reported as the file',
  )
  t.equal(loadConfig({ API_KEYS: other.entry, API_KEYS_FILE: file }).apiKeys.length, 3)
})

t.test('a key source that is set but holds no entries stops the gateway at start', async (t) => {
  t.throws(
    () => loadConfig({ API_KEYS: ' , # billing:produce:… ' }),
    /Invalid configuration: API_KEYS holds no key entries: .* unset API_KEYS to run without keys/,
  )
  const dir = mkdtempSync(join(tmpdir(), 'jobgate-keys-'))
  t.teardown(() => rmSync(dir, { recursive: true }))
  const file = join(dir, 'keys')
  writeFileSync(file, `# ${producer.entry}\n\n`)
  for (const HOST of ['127.0.0.1', '0.0.0.0']) {
    t.throws(
      () => loadConfig({ HOST, ALLOW_UNAUTHENTICATED: 'true', API_KEYS_FILE: file }),
      new RegExp(`API_KEYS_FILE holds no key entries \\(${file}\\)`),
      `an all-commented file on ${HOST}`,
    )
  }
  t.throws(
    () => loadConfig({ API_KEYS: producer.entry, API_KEYS_FILE: file }),
    /API_KEYS_FILE holds no key entries/,
    'an empty file beside inline keys is still a mistake',
  )
  t.equal(loadConfig({ API_KEYS: '', API_KEYS_FILE: ' ' }).apiKeys.length, 0, 'empty = unset')
})

t.test('no key → 401 with WWW-Authenticate; bad keys → 401; missing scope → 403', async (t) => {
  const { app, client } = await startGateway(t, { env: { API_KEYS, RATE_LIMIT: 'off' } })
  const submit = (headers: Record<string, string>) =>
    app.inject({ method: 'POST', url: '/v1/queues/q/jobs', headers, payload: { type: 't' } })

  const missing = await submit({})
  t.equal(missing.statusCode, 401)
  t.equal(missing.headers['www-authenticate'], 'Bearer realm="jobgate"')
  t.equal(missing.json().code, 'UNAUTHORIZED')

  const sameLength = producer.key.replace(/.$/, (last) => (last === 'A' ? 'B' : 'A'))
  t.equal(sameLength.length, producer.key.length)
  const wrongFirst = `x${producer.key.slice(1)}`
  for (const [label, key] of [
    ['a random key of the right length', newApiKey('x', ['produce']).key],
    ['a key differing in the last byte', sameLength],
    ['a key differing in the first byte', wrongFirst],
    ['a key with a byte more', `${producer.key}A`],
  ] as const) {
    const res = await submit(bearer(key))
    t.equal(res.statusCode, 401, label)
    t.equal(res.json().code, 'INVALID_API_KEY', label)
    t.match(res.headers['www-authenticate'], /error="invalid_token"/, label)
  }

  for (const [label, authorization] of [
    ['a Bearer with more after the key', `Bearer ${producer.key} extra`],
    ['a quoted key', `Bearer "${producer.key}"`],
    ['another scheme', `Basic ${Buffer.from(`u:${producer.key}`).toString('base64')}`],
    ['a key without a scheme', producer.key],
  ] as const) {
    const res = await submit({ authorization })
    t.equal(res.statusCode, 401, label)
    t.equal(res.json().code, 'INVALID_API_KEY', `${label}: a wrong key, not a missing one`)
    t.match(res.headers['www-authenticate'], /error="invalid_token"/, label)
  }
  t.match((await submit({ authorization: 'Basic abc' })).json().detail, /not "Bearer <key>"/)

  const readOnly = await submit(bearer(reader.key))
  t.equal(readOnly.statusCode, 403)
  t.equal(readOnly.json().code, 'FORBIDDEN')
  t.match(readOnly.json().detail, /needs produce/)
  t.strictSame(await client.keys('jobgate:{q}:*'), [], 'refused requests wrote nothing')

  t.equal((await submit(bearer(producer.key))).statusCode, 202)
  t.equal((await submit({ 'x-api-key': producer.key })).statusCode, 202, 'X-API-Key works too')
  t.equal((await submit(bearer(admin.key))).statusCode, 202, 'admin may do everything')
})

t.test('a key typed beyond ASCII matches the entry of its UTF-8 bytes', async (t) => {
  const key = 'ключ-1-ü'
  const entry = `cyrillic:read:${sha256(key).toString('hex')}`
  const { url } = await startGateway(t, {
    listen: true,
    env: { API_KEYS: `${API_KEYS},${entry}`, RATE_LIMIT: 'off' },
  })
  const { port } = new URL(url)
  // Sent as its UTF-8 bytes (fetch and node:http refuse such a header value); Node reads them
  // as Latin-1.
  const status = (header: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1')
      let answer = ''
      socket.on('data', (chunk) => {
        answer += chunk.toString()
      })
      socket.on('error', reject)
      socket.on('close', () => resolve(answer.split('\r\n')[0] ?? ''))
      socket.write(
        Buffer.from(
          `GET /v1/queues HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n${header}\r\n\r\n`,
        ),
      )
    })
  t.equal(await status(`x-api-key: ${key}`), 'HTTP/1.1 200 OK')
  t.equal(await status(`authorization: Bearer ${key}`), 'HTTP/1.1 200 OK')
  t.equal(await status(`x-api-key: ${key}x`), 'HTTP/1.1 401 Unauthorized')
})

t.test('two Authorization headers name no caller, whichever comes first', async (t) => {
  const { url } = await startGateway(t, { env: { API_KEYS, RATE_LIMIT: 'off' }, listen: true })
  // Raw header lines (Node then adds none, not even Host): fetch would join the two values.
  const submit = (authorizations: string[], extra: Record<string, string> = {}) =>
    new Promise<{ status: number; body: { code?: string; detail?: string } }>((resolve, reject) => {
      const headers = [
        ...['host', new URL(url).host, 'content-type', 'application/json'],
        ...authorizations.flatMap((value) => ['authorization', value]),
        ...Object.entries(extra).flat(),
      ]
      const req = request(`${url}/v1/queues/q/jobs`, { method: 'POST', headers }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          text += chunk
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }))
      })
      req.on('error', reject)
      req.end('{"type":"t"}')
    })
  const good = `Bearer ${producer.key}`
  t.equal((await submit([good])).status, 202, 'one header: accepted')
  for (const [label, pair] of [
    ['the good key first', [good, 'Bearer nope']],
    ['the good key last', ['Bearer nope', good]],
    ['the good key twice', [good, good]],
  ] as const) {
    const res = await submit([...pair], { 'x-api-key': producer.key })
    t.equal(res.status, 401, label)
    t.equal(res.body.code, 'INVALID_API_KEY', label)
    t.match(res.body.detail, /one header, one key/, label)
  }
})

t.test('each route asks for its scope; probes stay public', async (t) => {
  const { app } = await startGateway(t, { env: { API_KEYS, RATE_LIMIT: 'off' } })
  const created = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    headers: bearer(producer.key),
    payload: { type: 't' },
  })
  const id = created.json().id
  const cases: [string, string, string, { key: string }, number][] = [
    ['GET', `/v1/queues/q/jobs/${id}`, '', reader, 200],
    ['GET', `/v1/queues/q/jobs/${id}`, '', producer, 403],
    ['GET', '/v1/queues/q/jobs?state=queued', '', reader, 200],
    ['GET', '/v1/queues/q/jobs?state=queued', '', producer, 403],
    ['GET', '/v1/queues', '', reader, 200],
    ['GET', '/v1/queues/q/dead', '', reader, 200],
    ['DELETE', '/v1/queues/q/jobs?state=scheduled', '', producer, 403],
    ['DELETE', '/v1/queues/q/jobs?state=scheduled', '', admin, 200],
    ['POST', '/v1/queues/q:pause', '', producer, 403],
    ['POST', '/v1/queues/q:pause', '', admin, 200],
    ['POST', '/v1/queues/q:resume', '', worker, 403],
    ['POST', '/v1/queues/q:resume', '', admin, 200],
    ['DELETE', '/v1/queues/q', '', producer, 403],
    ['DELETE', '/v1/queues/q', '', admin, 409],
    ['POST', '/v1/queues/q/dead:redrive', '', reader, 403],
    ['POST', '/v1/queues/q/dead:redrive', '', admin, 200],
    ['POST', '/v1/queues/q/jobs:reserve', '{"worker":"w"}', producer, 403],
    ['POST', '/v1/queues/q/jobs:reserve', '{"worker":"w"}', worker, 200],
    ['GET', '/metrics', '', producer, 403],
    ['GET', '/metrics', '', reader, 200],
  ]
  for (const [method, url, body, key, status] of cases) {
    const res = await app.inject({
      method: method as 'GET' | 'POST' | 'DELETE',
      url,
      headers: { ...bearer(key.key), ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { payload: body } : {}),
    })
    t.equal(res.statusCode, status, `${method} ${url}`)
  }
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 401)
})

t.test("idempotency keys are scoped by the API key's name, a rotation's keys alike", async (t) => {
  const rotated = newApiKey('producer', ['produce'])
  const { app } = await startGateway(t, {
    env: { API_KEYS: `${API_KEYS},${rotated.entry}`, RATE_LIMIT: 'off' },
  })
  const submit = (key: string) =>
    app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      headers: { ...bearer(key), 'idempotency-key': 'order-1' },
      payload: { type: 't' },
    })
  const a = await submit(producer.key)
  const b = await submit(other.key)
  const aAgain = await submit(producer.key)
  t.equal(b.statusCode, 202)
  t.not(a.json().id, b.json().id, 'another client with the same key gets its own job')
  t.equal(b.headers['idempotent-replayed'], undefined)
  t.equal(aAgain.json().id, a.json().id)
  t.equal(aAgain.headers['idempotent-replayed'], 'true')
  const rotatedAgain = await submit(rotated.key)
  t.equal(
    rotatedAgain.json().id,
    a.json().id,
    'a retry sent with the new key of a rotation replays',
  )
  t.equal(rotatedAgain.headers['idempotent-replayed'], 'true')
})

t.test('the PHP worker over HTTP sends its key', async (t) => {
  const { app, url } = await startGateway(t, { env: { API_KEYS, RATE_LIMIT: 'off' }, listen: true })
  const { PhpWorker } = await import('./helpers/php-worker.js')
  const created = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    headers: bearer(producer.key),
    payload: { type: 'echo', payload: { a: 1 } },
  })
  const php = new PhpWorker({
    transport: 'http',
    gatewayUrl: url,
    args: [`--api-key=${worker.key}`],
  })
  t.teardown(() => php.stop())
  await php.waitForLog((line) => line.msg === 'job succeeded' && line.job_id === created.json().id)
  const job = await app.inject({
    method: 'GET',
    url: `/v1/queues/q/jobs/${created.json().id}`,
    headers: bearer(reader.key),
  })
  t.equal(job.json().state, 'succeeded')
})

t.test('new-api-key prints a key and the entry that accepts it', async (t) => {
  const { execFile } = await import('node:child_process')
  const { promisify } = await import('node:util')
  const { ROOT } = await import('../src/paths.js')
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'src/cli/new-api-key.ts', 'ci', 'produce+read'],
    { cwd: ROOT, env: { PATH: process.env.PATH ?? '' } },
  )
  const [, key, entry] = /^key.*\n {2}(\S+)\nentry.*\n {2}(\S+)\n$/.exec(stdout) ?? []
  t.match(entry, /^ci:produce\+read:[0-9a-f]{64}$/)
  const { app } = await startGateway(t, { env: { API_KEYS: entry ?? '', RATE_LIMIT: 'off' } })
  const res = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    headers: bearer(key ?? ''),
    payload: { type: 't' },
  })
  t.equal(res.statusCode, 202)
})
