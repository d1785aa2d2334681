import t from 'tap'
import { newApiKey } from '../src/auth.js'
import { QueueKeys } from '../src/queue/keys.js'
import { dataKeys, startGateway } from './helpers/gateway.js'
import { parsePrometheus, sample } from './helpers/prometheus.js'
import { RedisServer } from './helpers/redis-server.js'

const producer = newApiKey('producer', ['produce'])
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const BATCH = '/v1/queues/emails/jobs:batch'

interface ItemResult {
  index: number
  status: number
  replayed?: boolean
  location?: string
  job?: { id: string; state: string; idempotency_key: string | null; payload: unknown }
  problem?: { code: string; status: number; detail: string; errors?: { pointer: string }[] }
}

t.test('a batch stores every job in order, each with its own result', async (t) => {
  const { app, client } = await startGateway(t)
  const jobs = Array.from({ length: 100 }, (_, i) => ({
    idempotency_key: `order-${i}`,
    type: 'send-email',
    payload: { n: i },
    ...(i === 7 ? { priority: 9 } : {}),
    ...(i === 8 ? { delay_ms: 60_000 } : {}),
  }))
  const res = await app.inject({ method: 'POST', url: BATCH, payload: { jobs } })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.match(body, { accepted: 100, replayed: 0, rejected: 0 })
  const results: ItemResult[] = body.results
  t.strictSame(
    results.map((result) => [result.index, result.status, result.replayed]),
    jobs.map((_, i) => [i, 202, false]),
  )
  for (const [i, result] of results.entries()) {
    t.equal(result.location, `/v1/queues/emails/jobs/${result.job?.id}`)
    t.strictSame(result.job?.payload, { n: i })
    t.equal(result.job?.idempotency_key, `order-${i}`)
  }
  t.equal(results[8]?.job?.state, 'scheduled')
  const ids = results.map((result) => result.job?.id)
  t.equal(new Set(ids).size, 100, 'a distinct job per item')

  // Newest first: workers pop from the tail.
  const queued = ids.filter((_, i) => i !== 7 && i !== 8).reverse()
  t.strictSame(await client.lrange('jobgate:{emails}:ready:5', 0, -1), queued, 'in item order')
  t.strictSame(await client.lrange('jobgate:{emails}:ready:9', 0, -1), [ids[7]])
  t.strictSame(await client.zrange('jobgate:{emails}:scheduled', '0', '-1'), [ids[8]])
  t.equal(await client.xlen('jobgate:{emails}:events'), 100)

  const status = await app.inject({ method: 'GET', url: String(results[3]?.location) })
  t.equal(status.statusCode, 200)
  t.match(status.json(), { id: ids[3], type: 'send-email', payload: { n: 3 }, state: 'queued' })
})

t.test('items replay, conflict and fail validation on their own', async (t) => {
  const { app, client } = await startGateway(t)
  const first = await app.inject({
    method: 'POST',
    url: '/v1/queues/emails/jobs',
    headers: { 'idempotency-key': 'single' },
    payload: { type: 'send-email', payload: { to: 'ada' } },
  })
  t.equal(first.statusCode, 202)
  const before = (await dataKeys(client)).length
  const scrape = async () =>
    parsePrometheus((await app.inject({ method: 'GET', url: '/metrics' })).body)
  const metricsBefore = await scrape()

  const res = await app.inject({
    method: 'POST',
    url: BATCH,
    payload: {
      jobs: [
        { idempotency_key: 'single', type: 'send-email', payload: { to: 'ada' } },
        { idempotency_key: 'single', type: 'send-email', payload: { to: 'alan' } },
        { type: 'send-email', payload: 'not an object' },
        { idempotency_key: 'twice', type: 'a' },
        { idempotency_key: 'twice', type: 'a' },
        { idempotency_key: 'twice', type: 'b' },
        { idempotency_key: 'bad\u0001key', type: 'a' },
        { type: 'a', delay_ms: 5, run_at: '2030-01-01T00:00:00Z' },
        { type: 'a', unknown: true },
        { type: 'keyless' },
        42,
        { type: 'a', run_at: '2030-12-31T23:59:60Z' },
      ],
    },
  })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.match(body, { accepted: 2, replayed: 2, rejected: 8 })
  const results: ItemResult[] = body.results
  t.strictSame(
    results.map((result) => [result.status, result.replayed ?? result.problem?.code]),
    [
      [202, true],
      [422, 'IDEMPOTENCY_KEY_REUSED'],
      [400, 'VALIDATION_FAILED'],
      [202, false],
      [202, true],
      [422, 'IDEMPOTENCY_KEY_REUSED'],
      [400, 'VALIDATION_FAILED'],
      [400, 'VALIDATION_FAILED'],
      [400, 'VALIDATION_FAILED'],
      [202, false],
      [400, 'VALIDATION_FAILED'],
      [400, 'VALIDATION_FAILED'],
    ],
  )
  const metricsAfter = await scrape()
  for (const [name, count] of [
    ['jobgate_jobs_enqueued_total', 2],
    ['jobgate_jobs_replayed_total', 2],
  ] as const) {
    const delta =
      sample(metricsAfter, name, { queue: 'emails' }) -
      sample(metricsBefore, name, { queue: 'emails' })
    t.equal(delta, count, `${name} counts each item`)
  }
  t.equal(results[0]?.job?.id, first.json().id, 'the batch item replays the single submission')
  t.equal(results[4]?.job?.id, results[3]?.job?.id, 'a key repeated within the batch replays')
  t.strictSame(
    results[2]?.problem?.errors?.map((error) => error.pointer),
    ['/jobs/2/payload'],
  )
  t.match(results[7]?.problem?.detail, /delay_ms and run_at cannot be used together/)
  t.strictSame(
    results[8]?.problem?.errors?.map((error) => error.pointer),
    ['/jobs/8/unknown'],
  )
  t.equal(results[9]?.job?.idempotency_key, null)
  t.strictSame(
    results[10]?.problem?.errors?.map((error) => error.pointer),
    ['/jobs/10'],
    'an item that is not an object fails alone',
  )
  t.strictSame(
    results[11]?.problem?.errors?.map((error) => error.pointer),
    ['/jobs/11/run_at'],
  )
  t.match(
    results[2]?.problem,
    { instance: BATCH, request_id: res.headers['x-request-id'] },
    'item problems say which request they belong to',
  )

  const created = [results[3], results[9]].map((result) => result?.job?.id)
  t.strictSame(
    await client.lrange('jobgate:{emails}:ready:5', 0, -1),
    [...created.reverse(), first.json().id],
    'only the two new jobs were added',
  )
  // Two job records, one idempotency record (key "twice"): nothing for the refused items.
  t.equal((await dataKeys(client)).length, before + 3)
})

t.test('the whole batch is refused when it is not a batch, and writes nothing', async (t) => {
  const { app, client } = await startGateway(t)
  const cases: [string, unknown, number, string][] = [
    ['no jobs', {}, 400, 'VALIDATION_FAILED'],
    ['empty', { jobs: [] }, 400, 'VALIDATION_FAILED'],
    [
      'too many',
      { jobs: Array.from({ length: 501 }, () => ({ type: 'a' })) },
      400,
      'VALIDATION_FAILED',
    ],
    ['extra member', { jobs: [{ type: 'a' }], more: 1 }, 400, 'VALIDATION_FAILED'],
  ]
  for (const [what, payload, status, code] of cases) {
    const res = await app.inject({ method: 'POST', url: BATCH, payload: payload as object })
    t.equal(res.statusCode, status, what)
    t.equal(res.json().code, code, what)
  }
  const badQueue = await app.inject({
    method: 'POST',
    url: '/v1/queues/bad%20name/jobs:batch',
    payload: { jobs: [{ type: 'a' }] },
  })
  t.equal(badQueue.statusCode, 400)
  const notJson = await app.inject({
    method: 'POST',
    url: BATCH,
    headers: { 'content-type': 'application/json' },
    payload: '{"jobs": [',
  })
  t.equal(notJson.statusCode, 400)
  t.equal(notJson.json().code, 'INVALID_JSON')
  t.strictSame(await dataKeys(client), [], 'no key written')
})

t.test('exactly 500 items are accepted', async (t) => {
  const { app, client } = await startGateway(t)
  const jobs = Array.from({ length: 500 }, (_, i) => ({ idempotency_key: `k${i}`, type: 'a' }))
  const res = await app.inject({ method: 'POST', url: BATCH, payload: { jobs } })
  t.equal(res.statusCode, 200)
  t.equal(res.json().accepted, 500)
  t.equal(await client.llen('jobgate:{emails}:ready:5'), 500)
})

t.test('require-key mode refuses keyless items only', async (t) => {
  const { app, client } = await startGateway(t, { env: { IDEMPOTENCY_REQUIRED: 'true' } })
  const res = await app.inject({
    method: 'POST',
    url: BATCH,
    payload: { jobs: [{ type: 'a' }, { idempotency_key: 'k', type: 'a' }] },
  })
  t.equal(res.statusCode, 200)
  const results: ItemResult[] = res.json().results
  t.strictSame(
    results.map((result) => [result.status, result.problem?.code]),
    [
      [400, 'IDEMPOTENCY_KEY_REQUIRED'],
      [202, undefined],
    ],
  )
  t.equal(
    results[0]?.problem?.detail,
    "This gateway requires a key on every job submission: give body.jobs.0 an idempotency_key (a batch request's headers key nothing).",
  )
  t.equal(await client.llen('jobgate:{emails}:ready:5'), 1)
})

t.test('a full queue refuses the items beyond its depth', async (t) => {
  const { app, client } = await startGateway(t, { env: { MAX_QUEUE_DEPTH: '3' } })
  const jobs = Array.from({ length: 5 }, () => ({ type: 'a' }))
  const res = await app.inject({ method: 'POST', url: BATCH, payload: { jobs } })
  t.equal(res.statusCode, 200)
  const results: ItemResult[] = res.json().results
  t.strictSame(
    results.map((result) => result.status),
    [202, 202, 202, 503, 503],
  )
  t.equal(results[3]?.problem?.code, 'QUEUE_FULL')
  t.equal(res.headers['retry-after'], '1', 'the answer says when to send the refused ones again')
  t.equal(await client.llen('jobgate:{emails}:ready:5'), 3)
})

t.test(
  'Redis out of memory part way: the stored items are 202, the rest 503 items to send again',
  async (t) => {
    const { app, client } = await startGateway(t)
    // The queue exists already: its first job registers it, a write of its own.
    const first = await app.inject({
      method: 'POST',
      url: BATCH,
      payload: { jobs: [{ type: 'a' }] },
    })
    t.equal(first.json().accepted, 1)
    const used = Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1])
    await client.config('SET', 'maxmemory', String(used + 100_000))
    t.teardown(() => client.config('SET', 'maxmemory', '0'))
    // No idempotency keys: a retry of the whole batch would store the first items twice.
    const jobs = Array.from({ length: 200 }, (_, n) => ({
      type: 'a',
      payload: { n, pad: 'x'.repeat(2000) },
    }))
    const res = await app.inject({ method: 'POST', url: BATCH, payload: { jobs } })
    t.equal(res.statusCode, 200)
    const results: ItemResult[] = res.json().results
    const stored = results.filter((result) => result.status === 202)
    const refused = results.filter((result) => result.status === 503)
    t.ok(
      stored.length > 0 && refused.length > 0,
      `${stored.length} stored, ${refused.length} refused`,
    )
    t.equal(stored.length + refused.length, 200)
    t.match(refused[0]?.problem, {
      code: 'REDIS_UNAVAILABLE',
      detail: /refused the call for now \(OOM\)/,
    })
    t.ok(Number(res.headers['retry-after']) >= 1, 'with Retry-After')
    t.match(res.json(), { accepted: stored.length, rejected: refused.length })
    t.equal(
      await client.llen('jobgate:{emails}:ready:5'),
      1 + stored.length,
      'each 202 is a stored job',
    )

    await client.config('SET', 'maxmemory', '0')
    const again = refused.map((result) => jobs[result.index])
    const retried = await app.inject({ method: 'POST', url: BATCH, payload: { jobs: again } })
    t.match(retried.json(), { accepted: refused.length, rejected: 0 })
    t.equal(await client.llen('jobgate:{emails}:ready:5'), 1 + 200, 'every job once')
  },
)

t.test('an item whose call fails otherwise is a 500 item; the others stand', async (t) => {
  const { app, client } = await startGateway(t)
  // A key of the wrong type where the item's idempotency record would be: its enqueue script
  // fails (WRONGTYPE) before it writes, as a bug would, while the items around it succeed.
  const poisoned = new QueueKeys('jobgate', 'emails').idempotency('anonymous', 'poisoned')
  await client.hset(poisoned, 'not', 'a record')
  const jobs = [
    { idempotency_key: 'before', type: 'a' },
    { idempotency_key: 'poisoned', type: 'a' },
    { type: 'a', run_at: '1960-01-01T00:00:00Z' },
  ]
  const res = await app.inject({ method: 'POST', url: BATCH, payload: { jobs } })
  t.equal(res.statusCode, 200)
  const results: ItemResult[] = res.json().results
  t.strictSame(
    results.map((result) => result.status),
    [202, 500, 202],
  )
  t.match(results[1]?.problem, { code: 'INTERNAL_ERROR', status: 500 })
  t.match(res.json(), { accepted: 2, replayed: 0, rejected: 1 })
  t.equal(res.headers['retry-after'], undefined)
  t.strictSame(
    (await client.lrange('jobgate:{emails}:ready:5', 0, -1)).sort(),
    [results[0]?.job?.id, results[2]?.job?.id].sort(),
    'the 202 items are stored, the 500 item is not',
  )
  t.equal(results[2]?.job?.state, 'queued', 'a run_at before 1970 runs now')
  t.equal(await client.type(poisoned), 'hash', 'left as it was')

  // Every item failing so fails the whole request.
  const alone = await app.inject({ method: 'POST', url: BATCH, payload: { jobs: [jobs[1]] } })
  t.equal(alone.statusCode, 500)
  t.equal(alone.json().code, 'INTERNAL_ERROR')
})

t.test('batches need the produce scope; idempotency keys are scoped by client', async (t) => {
  const { app, client } = await startGateway(t, { env: { API_KEYS: producer.entry } })
  const none = await app.inject({ method: 'POST', url: BATCH, payload: { jobs: [{ type: 'a' }] } })
  t.equal(none.statusCode, 401)
  const res = await app.inject({
    method: 'POST',
    url: BATCH,
    headers: { authorization: `Bearer ${producer.key}` },
    payload: { jobs: [{ idempotency_key: 'k', type: 'a' }] },
  })
  t.equal(res.statusCode, 200)
  t.equal(res.json().accepted, 1)
  t.equal(
    await client.exists(`jobgate:{emails}:idem:producer:k`),
    1,
    'the idempotency record is under the key name',
  )
})

t.test('Redis down: the whole batch is a 503 and a retry replays what was stored', async (t) => {
  const redis = await RedisServer.start({
    args: ['--appendonly', 'yes', '--appendfsync', 'always'],
  })
  t.teardown(() => redis.destroy())
  const { app } = await startGateway(t, { redis })
  const jobs = [
    { idempotency_key: 'a', type: 'a' },
    { idempotency_key: 'b', type: 'b' },
  ]
  const stored = await app.inject({ method: 'POST', url: BATCH, payload: { jobs: [jobs[0]] } })
  t.equal(stored.json().accepted, 1)
  await redis.stop()
  const down = await app.inject({ method: 'POST', url: BATCH, payload: { jobs } })
  t.equal(down.statusCode, 503)
  t.equal(down.json().code, 'REDIS_UNAVAILABLE')
  t.ok(Number(down.headers['retry-after']) >= 1, 'with Retry-After')
  await redis.spawn()
  let retried = await app.inject({ method: 'POST', url: BATCH, payload: { jobs } })
  for (let tries = 0; retried.statusCode === 503 && tries < 100; tries++) {
    await sleep(100) // until the breaker's half-open probe succeeds
    retried = await app.inject({ method: 'POST', url: BATCH, payload: { jobs } })
  }
  t.equal(retried.statusCode, 200)
  t.match(retried.json(), { accepted: 1, replayed: 1, rejected: 0 })
  t.equal(retried.json().results[0].job.id, stored.json().results[0].job.id)
})
