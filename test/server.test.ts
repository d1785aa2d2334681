import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { type AddressInfo, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { newApiKey } from '../src/auth.js'
import { EventReader } from './helpers/event-source.js'
import { GatewayProcess, gatewayOnOwnRedis } from './helpers/gateway-process.js'
import { freePort, RedisServer } from './helpers/redis-server.js'

t.test('a bad variable stops the process at boot with a message naming it', async (t) => {
  const gateway = await GatewayProcess.start({ PORT: 'eighty' }, false)
  const { code } = await gateway.exited
  t.equal(code, 78)
  t.match(gateway.stderr.join('\n'), /Invalid configuration: PORT must be an integer/)
})

t.test('serves over HTTP, logs JSON with the request id, exits 0 on SIGTERM', async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.destroy())
  const gateway = await GatewayProcess.start({ REDIS_URL: redis.url })
  t.teardown(() => gateway.stop('SIGKILL'))

  const res = await fetch(`${gateway.url}/v1/queues/q/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': 'trace-123' },
    body: JSON.stringify({ type: 't' }),
  })
  t.equal(res.status, 202)
  t.equal(res.headers.get('x-request-id'), 'trace-123')
  t.match(
    await gateway.waitForLog((l) => l.msg.startsWith('no API keys configured')),
    { level: 40, host: '127.0.0.1', allow_unauthenticated: false },
    'a gateway without keys says so at start',
  )
  const line = await gateway.waitForLog(
    (l) => l.msg === 'request completed' && l.url === '/v1/queues/q/jobs',
  )
  t.match(line, {
    request_id: 'trace-123',
    method: 'POST',
    status: 202,
    url: '/v1/queues/q/jobs',
    ip: '127.0.0.1',
    client: 'anonymous',
  })
  const watcher = await EventReader.open(`${gateway.url}/v1/queues/q/events`, {
    'x-request-id': 'watch-1',
  })
  await watcher.received(0)
  watcher.close()
  t.match(
    await gateway.waitForLog(
      (l) =>
        l.msg === 'client closed the connection before the answer was complete' &&
        l.request_id === 'watch-1',
    ),
    { method: 'GET', status: 200, url: '/v1/queues/q/events' },
    'an event stream its client closed has its access-log line too',
  )
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(
    gateway.lines.filter((l) => l.request_id === 'watch-1' && l.status !== undefined).length,
    1,
    'and only one',
  )
  t.ok(
    gateway.lines.every((l) => !l.msg.startsWith('(not JSON)')),
    'every stdout line is a JSON log line',
  )
  t.notOk(
    gateway.lines.some((l) => l.url === '/healthz'),
    'probes are not in the info-level access log',
  )

  const { code, signal } = await gateway.stop('SIGTERM')
  t.equal(code, 0)
  t.equal(signal, null)
  t.ok(gateway.lines.some((l) => l.msg === 'stopped'))
  const client = redis.client()
  t.teardown(() => client.disconnect())
  const clients = await client.client('LIST')
  t.equal(String(clients).trim().split('\n').length, 1, 'the gateway closed its Redis connection')
})

t.test('starts without Redis and reports not ready, then ready once Redis is up', async (t) => {
  const redis = await RedisServer.start()
  await redis.stop()
  t.teardown(() => redis.destroy())
  const gateway = await GatewayProcess.start({ REDIS_URL: redis.url })
  t.teardown(() => gateway.stop('SIGKILL'))
  const down = await fetch(`${gateway.url}/readyz`)
  t.equal(down.status, 503)
  t.match(await down.json(), { code: 'NOT_READY', checks: { redis: 'down' } })
  const job = await fetch(`${gateway.url}/v1/queues/q/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 't' }),
  })
  t.equal(job.status, 503)
  t.equal(job.headers.get('retry-after'), '1')
  t.match(await job.json(), { code: 'REDIS_UNAVAILABLE' })

  await redis.spawn()
  const deadline = Date.now() + 10_000
  let status = 0
  while (Date.now() < deadline) {
    status = (await fetch(`${gateway.url}/readyz`)).status
    if (status === 200) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(status, 200)
})

/** An API keys file holding the key `old`, and the key `rotated` to put in its place. */
function keyRotation(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'jobgate-keys-'))
  t.teardown(() => rmSync(dir, { recursive: true }))
  const file = join(dir, 'keys')
  const old = newApiKey('billing', ['read'])
  const rotated = newApiKey('billing', ['read'])
  writeFileSync(file, `${old.entry}\n`)
  return { file, old, rotated }
}

t.test('SIGHUP reads the API keys file again; a bad file keeps the keys in use', async (t) => {
  const { file, old, rotated } = keyRotation(t)
  const redis = await RedisServer.start()
  t.teardown(() => redis.destroy())
  const gateway = await GatewayProcess.start({ REDIS_URL: redis.url, API_KEYS_FILE: file })
  t.teardown(() => gateway.stop('SIGKILL'))
  const status = async (key: string) =>
    (
      await fetch(`${gateway.url}/v1/queues`, {
        headers: { authorization: `Bearer ${key}` },
      })
    ).status
  const reloads = () => gateway.lines.filter((line) => line.msg.startsWith('API keys')).length
  const hangUp = async () => {
    const seen = reloads()
    gateway.child.kill('SIGHUP')
    await gateway.waitForLog(() => reloads() > seen)
    return gateway.lines.filter((line) => line.msg.startsWith('API keys')).at(-1)
  }
  t.equal(await status(old.key), 200)
  t.equal(await status(rotated.key), 401)

  writeFileSync(file, `${old.entry}\n${rotated.entry}\n`)
  t.match(await hangUp(), { level: 30, msg: 'API keys reloaded', keys: 2, names: ['billing'] })
  t.equal(await status(old.key), 200, 'both keys of the rotation work')
  t.equal(await status(rotated.key), 200)

  writeFileSync(file, '# emptied by mistake\n')
  t.match(await hangUp(), {
    level: 50,
    msg: 'API keys not reloaded: the keys in use are kept',
    err: /API_KEYS_FILE holds no key entries/,
  })
  t.equal(await status(rotated.key), 200, 'the gateway did not open up')
  t.equal(await status('nonsense'), 401)

  writeFileSync(file, `${rotated.entry}\n`)
  t.match(await hangUp(), { msg: 'API keys reloaded', keys: 1 })
  t.equal(await status(old.key), 401, 'the old key is gone')
  t.equal(await status(rotated.key), 200)
  t.equal(gateway.child.exitCode, null, 'SIGHUP does not stop the gateway')
})

t.test('a SIGHUP that comes while the gateway boots is applied once it listens', async (t) => {
  const { file, old, rotated } = keyRotation(t)
  // No Redis at this address yet: the gateway waits 2 s for it before it listens.
  const redisPort = await freePort()
  const gateway = await GatewayProcess.start(
    { REDIS_URL: `redis://127.0.0.1:${redisPort}`, API_KEYS_FILE: file },
    false,
  )
  t.teardown(() => gateway.stop('SIGKILL'))
  // Its first try to reach Redis is logged after its signal handlers are set, and 2 s
  // before it listens.
  await gateway.waitForLog((line) => /ECONNREFUSED/.test(JSON.stringify(line.err)), 20_000)
  const serving = await fetch(`${gateway.url}/healthz`).then(
    () => true,
    () => false,
  )
  t.notOk(serving, 'it does not serve yet')
  writeFileSync(file, `${rotated.entry}\n`)
  gateway.child.kill('SIGHUP')
  await gateway.waitUntilServing(20_000)
  await gateway.waitForLog((line) => line.msg === 'API keys reloaded')
  // Requests are counted against their rate limit, in Redis, before their key is checked.
  const redis = await RedisServer.start({ port: redisPort })
  t.teardown(() => redis.destroy())
  const status = async (key: string) =>
    (await fetch(`${gateway.url}/v1/queues`, { headers: { authorization: `Bearer ${key}` } }))
      .status
  const deadline = Date.now() + 20_000
  while ((await status(rotated.key)) !== 200 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(await status(rotated.key), 200, 'the key put in while it booted is let in')
  t.equal(await status(old.key), 401, 'the key taken out is refused')
  t.equal(gateway.child.exitCode, null, 'the SIGHUP did not stop it')
})

t.test('a Redis that may evict keys gets a warning at boot; noeviction none', async (t) => {
  const evicting = await gatewayOnOwnRedis(t, {
    redis: { args: ['--maxmemory-policy', 'allkeys-lru'] },
  })
  const warning = await evicting.gateway.waitForLog((line) => line.maxmemory_policy !== undefined)
  t.match(warning, { level: 40, maxmemory_policy: 'allkeys-lru', msg: /noeviction/ })

  // The boot report comes before the gateway listens, and start() waits until it serves.
  const safe = await gatewayOnOwnRedis(t)
  t.notOk(
    safe.gateway.lines.some((line) => line.maxmemory_policy !== undefined),
    'no warning with the default policy',
  )
})

t.test(
  'a refused login is logged without the password, and the gateway is not ready',
  async (t) => {
    const redis = await RedisServer.start({
      args: ['--requirepass', 'right-one'],
      login: { password: 'right-one' },
    })
    t.teardown(() => redis.destroy())
    const gateway = await GatewayProcess.start({
      REDIS_URL: `redis://app:wrongS3cret@127.0.0.1:${redis.port}`,
    })
    t.teardown(() => gateway.stop('SIGKILL'))
    const line = await gateway.waitForLog((l) => l.msg === 'Redis connection error')
    t.match(line, { level: 40, err: { message: /WRONGPASS|invalid username-password/ } })
    t.notMatch(JSON.stringify(gateway.lines), /wrongS3cret/, 'no log line repeats the password')
    t.equal((await fetch(`${gateway.url}/readyz`)).status, 503)
    // A bad URL at boot: the message names REDIS_URL, not the password.
    const bad = await GatewayProcess.start(
      { REDIS_URL: 'redis://app:wrongS3cret@cache:6379?db=2' },
      false,
    )
    t.equal((await bad.exited).code, 78)
    t.match(
      bad.stderr.join('\n'),
      /REDIS_URL takes no query string .*redis:\/\/\*\*\*@cache:6379\?\*\*\*/,
    )
    t.notMatch(bad.stderr.join('\n'), /wrongS3cret/)
  },
)

t.test('a port in use stops the gateway at boot with a message naming it', async (t) => {
  const taken = createServer().listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => taken.close())
  const port = String((taken.address() as AddressInfo).port)
  const redis = await RedisServer.start()
  t.teardown(() => redis.destroy())
  const gateway = await GatewayProcess.start({ PORT: port, REDIS_URL: redis.url }, false)
  const { code } = await gateway.exited
  t.equal(code, 78)
  t.match(
    gateway.stderr.join('\n'),
    `jobgate cannot listen on 127.0.0.1:${port}: it is in use (set PORT or HOST)`,
  )
})

t.test(
  'a HOST that does not resolve stops the gateway at boot with a message naming it',
  async (t) => {
    const redis = await RedisServer.start()
    t.teardown(() => redis.destroy())
    const gateway = await GatewayProcess.start(
      { HOST: 'jobgate.invalid', ALLOW_UNAUTHENTICATED: 'true', REDIS_URL: redis.url },
      false,
    )
    const { code } = await gateway.exited
    t.equal(code, 78)
    t.match(
      gateway.stderr.join('\n'),
      /jobgate cannot listen on jobgate\.invalid:\d+: it is not a host name/,
    )
  },
)
