import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { newApiKey } from '../src/auth.js'
import { startGateway, startGatewayBehindProxy } from './helpers/gateway.js'
import { GatewayProcess } from './helpers/gateway-process.js'
import { RedisServer } from './helpers/redis-server.js'

const producer = newApiKey('producer', ['produce'])
const other = newApiKey('other', ['produce'])

t.test('two gateways sharing one Redis admit N per window together, then 429', async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.destroy())
  const env = {
    REDIS_URL: redis.url,
    API_KEYS: `${producer.entry},${other.entry}`,
    RATE_LIMIT_PRODUCE: '10/1m',
    LOG_LEVEL: 'warn',
  }
  const gateways = await Promise.all([GatewayProcess.start(env), GatewayProcess.start(env)])
  t.teardown(() => Promise.all(gateways.map((gateway) => gateway.stop('SIGKILL'))))
  const submit = (gateway: GatewayProcess, key = producer.key) =>
    fetch(`${gateway.url}/v1/queues/q/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ type: 't' }),
    })

  const statuses: number[] = []
  const refused: Response[] = []
  for (let i = 0; i < 20; i++) {
    const res = await submit(gateways[i % 2] as GatewayProcess)
    statuses.push(res.status)
    if (res.status === 202) {
      t.equal(res.headers.get('ratelimit-policy'), '"produce";q=10;w=60')
      t.match(res.headers.get('ratelimit'), new RegExp(`^"produce";r=${9 - i};t=\\d+$`))
    } else refused.push(res)
    await res.arrayBuffer()
  }
  t.strictSame(
    statuses,
    [...Array(10).fill(202), ...Array(10).fill(429)],
    'N admitted across both, then refused',
  )
  for (const res of refused) {
    const retryAfter = Number(res.headers.get('retry-after'))
    t.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter} s`)
    t.match(res.headers.get('content-type'), /^application\/problem\+json/)
    t.match(res.headers.get('ratelimit'), /^"produce";r=0;t=\d+$/)
    t.equal(res.headers.get('x-ratelimit-remaining'), '0')
  }
  const problem = await (await submit(gateways[0] as GatewayProcess)).json()
  t.match(problem, { status: 429, code: 'RATE_LIMITED' })
  const client = redis.client()
  t.teardown(() => client.disconnect())
  t.equal(await client.llen('jobgate:{q}:ready:5'), 10, 'only admitted requests made jobs')

  t.equal(
    (await submit(gateways[1] as GatewayProcess, other.key)).status,
    202,
    'another client has its own limit',
  )
  const probes = await Promise.all(
    Array.from({ length: 30 }, () =>
      fetch(`${gateways[0]?.url}/healthz`).then((res) => res.status),
    ),
  )
  t.ok(
    probes.every((status) => status === 200),
    'health probes are never rate limited',
  )
})

t.test(
  'heartbeats are outside the work limit for a caller with a key; guesses count',
  async (t) => {
    const workers = newApiKey('workers', ['work'])
    const { app } = await startGateway(t, {
      env: { API_KEYS: `${producer.entry},${workers.entry}`, RATE_LIMIT_WORK: '2/1m' },
    })
    const as = (key: string) => ({ authorization: `Bearer ${key}` })
    const submitted = await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      headers: as(producer.key),
      payload: { type: 't' },
    })
    const reserve = () =>
      app.inject({
        method: 'POST',
        url: '/v1/queues/q/jobs:reserve',
        headers: as(workers.key),
        payload: { worker: 'w' },
      })
    const leased = await reserve()
    t.equal(leased.statusCode, 200)
    t.equal((await reserve()).statusCode, 204)
    t.equal((await reserve()).statusCode, 429, 'the work limit is used up')
    const heartbeat = (key: string) =>
      app.inject({
        method: 'POST',
        url: `/v1/queues/q/jobs/${submitted.json().id}:heartbeat`,
        headers: as(key),
        payload: { lease_token: leased.json().lease.token, lease_ms: 30_000 },
      })
    for (let i = 0; i < 3; i++) {
      const beat = await heartbeat(workers.key)
      t.equal(beat.statusCode, 200, `heartbeat ${i + 1} keeps the lease`)
      t.equal(beat.headers['x-ratelimit-remaining'], undefined, 'and is not counted')
    }
    const guesses = []
    for (let i = 0; i < 3; i++) guesses.push((await heartbeat('guess')).statusCode)
    t.strictSame(guesses, [401, 401, 429], 'a wrong key is counted by address')
  },
)

t.test('behind a trusted proxy the address it forwards is the client', async (t) => {
  const submitFrom = async (app: FastifyInstance, forwardedFor: string, remoteAddress: string) =>
    (
      await app.inject({
        method: 'POST',
        url: '/v1/queues/q/jobs',
        headers: { 'x-forwarded-for': forwardedFor },
        payload: { type: 't' },
        remoteAddress,
      })
    ).statusCode
  const env = { RATE_LIMIT_PRODUCE: '2/1m', TRUST_PROXY: '10.0.0.0/8' }
  const behind = await startGateway(t, { env })
  const proxied = []
  for (const client of ['203.0.113.1', '203.0.113.1', '203.0.113.1', '203.0.113.2']) {
    proxied.push(await submitFrom(behind.app, client, '10.1.2.3'))
  }
  t.strictSame(proxied, [202, 202, 429, 202], 'each forwarded client has its own count')
  t.equal(
    await submitFrom(behind.app, '203.0.113.9', '192.0.2.50'),
    202,
    'a sender that is not a trusted proxy counts as itself',
  )
  t.equal(await submitFrom(behind.app, '203.0.113.10', '192.0.2.50'), 202)
  t.equal(await submitFrom(behind.app, '203.0.113.11', '192.0.2.50'), 429, 'its header is ignored')

  const untrusting = await startGateway(t, { env: { RATE_LIMIT_PRODUCE: '2/1m' } })
  const direct = []
  for (const client of ['203.0.113.1', '203.0.113.2', '203.0.113.3']) {
    direct.push(await submitFrom(untrusting.app, client, '10.1.2.3'))
  }
  t.strictSame(direct, [202, 202, 429], 'without TRUST_PROXY the header changes nothing')
})

t.test('an open gateway limits per client address; wrong keys are throttled too', async (t) => {
  const open = await startGateway(t, { env: { RATE_LIMIT_PRODUCE: '3/1m' } })
  const statuses = []
  for (let i = 0; i < 4; i++) {
    statuses.push(
      (await open.app.inject({ method: 'POST', url: '/v1/queues/q/jobs', payload: { type: 't' } }))
        .statusCode,
    )
  }
  t.strictSame(statuses, [202, 202, 202, 429])
  const elsewhere = await open.app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    payload: { type: 't' },
    remoteAddress: '10.0.0.2',
  })
  t.equal(elsewhere.statusCode, 202, 'another address has its own count')

  const shared = await startGateway(t, { env: { RATE_LIMIT_PRODUCE: '3/1m' } })
  const routes = [
    { url: '/v1/queues/q/jobs', payload: { type: 't' } },
    { url: '/v1/queues/q/jobs:batch', payload: { jobs: [{ type: 't' }] } },
    { url: '/v1/queues/other/jobs', payload: { type: 't' } },
    { url: '/v1/queues/q/jobs:batch', payload: { jobs: [{ type: 't' }] } },
  ]
  const acrossRoutes = []
  for (const route of routes) {
    acrossRoutes.push((await shared.app.inject({ method: 'POST', ...route })).statusCode)
  }
  t.strictSame(
    acrossRoutes,
    [202, 200, 202, 429],
    'one count per client and scope, whatever the route or queue',
  )

  const closed = await startGateway(t, {
    env: { API_KEYS: producer.entry, RATE_LIMIT_PRODUCE: '3/1m' },
  })
  const guesses = []
  for (let i = 0; i < 4; i++) {
    const res = await closed.app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      headers: { authorization: 'Bearer guess' },
      payload: { type: 't' },
    })
    guesses.push(res.statusCode)
  }
  t.strictSame(guesses, [401, 401, 401, 429], 'key guessing is rate limited by address')

  const v6 = await startGateway(t, { env: { RATE_LIMIT_PRODUCE: '3/1m' } })
  const fromV6 = []
  for (const address of ['2001:db8::1', '2001:db8::2', '2001:db8:0:0:ffff::3', '2001:db8::4']) {
    const res = await v6.app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      payload: { type: 't' },
      remoteAddress: address,
    })
    fromV6.push(res.statusCode)
  }
  const nextBlock = await v6.app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    payload: { type: 't' },
    remoteAddress: '2001:db8:0:1::1',
  })
  t.strictSame(
    [...fromV6, nextBlock.statusCode],
    [202, 202, 202, 429, 202],
    'IPv6 addresses count by their /64: moving within it does not reset the count',
  )
  const client = v6.redis.client()
  t.teardown(() => client.disconnect())
  t.strictSame((await client.keys('jobgate:ratelimit:*')).sort(), [
    'jobgate:ratelimit:produce:ip:2001:db8:0:1::',
    'jobgate:ratelimit:produce:ip:2001:db8::',
  ])
})

t.test(
  'Redis hanging: the count fails like any Redis call, at once once the breaker is open',
  async (t) => {
    // At this limit every request takes its count from Redis (chunks of one).
    const { app, proxy } = await startGatewayBehindProxy(t, {
      env: { RATE_LIMIT_PRODUCE: '100/1m', RATE_LIMIT_READ: '2/1m', BREAKER_RESET: '10s' },
    })
    const post = async () => {
      const started = Date.now()
      const res = await app.inject({
        method: 'POST',
        url: '/v1/queues/q/jobs',
        payload: { type: 't' },
      })
      return {
        status: res.statusCode,
        code: res.json().code,
        retryAfter: res.headers['retry-after'],
        ms: Date.now() - started,
      }
    }
    t.equal((await post()).status, 202)
    proxy.freezeReplies()
    const hung = await Promise.all(Array.from({ length: 10 }, post))
    t.strictSame(
      hung.map(({ status, code }) => `${status} ${code}`),
      Array(10).fill('503 REDIS_UNAVAILABLE'),
      'the count times out: 503, not a pass to a store call that would wait again',
    )
    t.equal(app.store.breaker.state, 'open', 'the count failing opened the breaker')
    for (let i = 0; i < 3; i++) {
      const open = await post()
      t.match(open, { status: 503, code: 'REDIS_UNAVAILABLE', retryAfter: /^(9|10)$/ })
      t.ok(open.ms < 200, `while open, answered without waiting for Redis (${open.ms} ms)`)
    }

    const scrapes = []
    for (let i = 0; i < 4; i++) {
      const res = await app.inject({ method: 'GET', url: '/metrics' })
      scrapes.push(`${res.statusCode} ${res.headers.ratelimit ?? 'unlimited'}`)
      if (i === 3)
        t.match(res.body, /^jobgate_queue_metrics_up 0$/m, 'metrics say Redis is not read')
    }
    t.strictSame(
      scrapes,
      Array(4).fill('200 unlimited'),
      '/metrics is outside the read limit (2/1m) and served while Redis hangs',
    )
  },
)

t.test('while Redis cannot count, answers carry no rate-limit headers', async (t) => {
  // At this limit every request takes its token from Redis (chunks of one).
  const gateway = await startGateway(t, { env: { RATE_LIMIT_PRODUCE: '1000/1m' } })
  const counted = await gateway.app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    payload: { type: 't' },
  })
  t.equal(counted.headers['x-ratelimit-remaining'], '999')
  t.match(counted.headers.ratelimit, /^"produce";r=999;t=[1-9]/)
  // The tokens of the chunk taken with it (1 % of the limit) are counted without Redis.
  for (let i = 0; i < 9; i++) {
    await gateway.app.inject({ method: 'POST', url: '/v1/queues/q/jobs', payload: { type: 't' } })
  }
  await gateway.redis.kill()
  const res = await gateway.app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    payload: { type: 't' },
  })
  t.equal(res.statusCode, 503)
  for (const name of [
    'x-ratelimit-limit',
    'x-ratelimit-remaining',
    'x-ratelimit-reset',
    'ratelimit',
    'ratelimit-policy',
  ]) {
    t.equal(res.headers[name], undefined, `no ${name}`)
  }
})

t.test(
  'a count Redis refuses: unavailable → 503; any other error → passes uncounted',
  async (t) => {
    const { app, client } = await startGateway(t, { env: { RATE_LIMIT_READ: '2/1m' } })
    const read = async () => {
      const res = await app.inject({ method: 'GET', url: '/v1/queues' })
      return `${res.statusCode} ${res.headers['x-ratelimit-remaining'] ?? 'uncounted'}`
    }
    // Something else wrote the client's counter key: the count fails with WRONGTYPE, a bug
    // rather than an outage, and the limit is not worth refusing every read for.
    await client.hset('jobgate:ratelimit:read:ip:127.0.0.1', 'foreign', '1')
    const reads = []
    for (let i = 0; i < 4; i++) reads.push(await read())
    t.strictSame(reads, Array(4).fill('200 uncounted'), 'over the limit of 2, each passes')
    t.equal(app.store.breaker.state, 'closed')
    await client.del('jobgate:ratelimit:read:ip:127.0.0.1')
    t.equal(await read(), '200 1', 'counted again once the key is the counter')

    // Full, and told to refuse writes rather than evict: Redis cannot take writes, an outage
    // for a job gateway, as for every other Redis call.
    await client.config('SET', 'maxmemory-policy', 'noeviction')
    await client.config('SET', 'maxmemory', '1')
    t.teardown(() => client.config('SET', 'maxmemory', '0'))
    const full = await app.inject({ method: 'GET', url: '/v1/queues' })
    t.equal(full.statusCode, 503)
    t.equal(full.json().code, 'REDIS_UNAVAILABLE')
  },
)
