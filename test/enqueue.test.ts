import t from 'tap'
import { dataKeys, startGateway } from './helpers/gateway.js'

const JSON_HEADERS = { 'content-type': 'application/json' }

t.test('POST a job → 202 with Location; GET it back', async (t) => {
  const { app, client } = await startGateway(t)
  const res = await app.inject({
    method: 'POST',
    url: '/v1/queues/emails/jobs',
    headers: { ...JSON_HEADERS, 'idempotency-key': 'welcome-ada' },
    payload: { type: 'send-email', payload: { to: 'ada@example.com' }, max_attempts: 4 },
  })
  t.equal(res.statusCode, 202)
  t.match(res.headers['content-type'], /^application\/json/)
  const job = res.json()
  t.match(job.id, /^[0-9a-f-]{36}$/)
  t.equal(job.state, 'queued')
  t.equal(res.headers.location, `/v1/queues/emails/jobs/${job.id}`)
  t.equal(res.headers['idempotent-replayed'], undefined)

  const status = await app.inject({ method: 'GET', url: String(res.headers.location) })
  t.equal(status.statusCode, 200)
  const read = status.json()
  t.equal(read.id, job.id)
  t.equal(read.type, 'send-email')
  t.strictSame(read.payload, { to: 'ada@example.com' })
  t.equal(read.attempts, 0)
  t.equal(read.max_attempts, 4)
  t.equal(read.state, 'queued')
  t.equal(read.created_at, job.created_at)
  t.ok(Date.parse(read.created_at) > Date.now() - 60_000, 'created_at is a recent timestamp')
  t.equal(read.idempotency_key, 'welcome-ada')
  t.strictSame(read.history, [{ state: 'queued', at: read.created_at }])
  t.strictSame(read.backoff, {
    type: 'exponential',
    delay_ms: 1000,
    max_delay_ms: 3600000,
    jitter: true,
  })
  t.equal(read.priority, 5)

  t.strictSame(await client.lrange('jobgate:{emails}:ready:5', 0, -1), [job.id])
  t.equal(await client.hget(`jobgate:{emails}:job:${job.id}`, 'state'), 'queued')
  t.strictSame(await client.smembers('jobgate:queues'), ['emails'])
  t.equal(await client.xlen('jobgate:{emails}:events'), 1)
})

t.test('defaults come from openapi.yaml and are stored', async (t) => {
  const { app, client } = await startGateway(t)
  const res = await app.inject({ method: 'POST', url: '/v1/queues/q/jobs', payload: { type: 't' } })
  t.equal(res.statusCode, 202)
  const job = res.json()
  t.strictSame(job.payload, {})
  t.equal(job.max_attempts, 3)
  t.equal(job.timeout_ms, null)
  t.equal(job.expires_at, null)
  const stored = await client.hgetall(`jobgate:{q}:job:${job.id}`)
  t.equal(stored.max_attempts, '3')
  t.equal(stored.payload, '{}')
  t.equal(stored.backoff_type, 'exponential')
})

t.test(
  'same key and body → same job, Idempotent-Replayed; quoted and bare keys are one key',
  async (t) => {
    const { app, client } = await startGateway(t)
    const send = (key: string, body: object) =>
      app.inject({
        method: 'POST',
        url: '/v1/queues/emails/jobs',
        headers: { 'idempotency-key': key },
        payload: body,
      })
    const first = await send('order-1', { type: 'charge', payload: { a: 1, b: 2 } })
    // Same JSON value with keys in another order, quoted key form.
    const again = await send('"order-1"', { payload: { b: 2, a: 1 }, type: 'charge' })
    t.equal(first.statusCode, 202)
    t.equal(again.statusCode, 202)
    t.equal(again.headers['idempotent-replayed'], 'true')
    t.equal(again.json().id, first.json().id)
    t.equal(again.headers.location, first.headers.location)
    t.equal(await client.llen('jobgate:{emails}:ready:5'), 1)
    t.equal(await client.hget('jobgate:{emails}:stats', 'enqueued'), '1')
    t.equal((await client.pttl('jobgate:{emails}:idem:anonymous:order-1')) > 86_000_000, true)
  },
)

t.test('same key, different body → 422 problem and nothing new', async (t) => {
  const { app, client } = await startGateway(t)
  const send = (payload: object) =>
    app.inject({
      method: 'POST',
      url: '/v1/queues/emails/jobs',
      headers: { 'idempotency-key': 'k' },
      payload,
    })
  const first = await send({ type: 'charge', payload: { amount: 1 } })
  t.equal(first.statusCode, 202)
  const before = await dataKeys(client)
  const conflict = await send({ type: 'charge', payload: { amount: 2 } })
  t.equal(conflict.statusCode, 422)
  t.match(conflict.headers['content-type'], /^application\/problem\+json/)
  t.match(conflict.json(), {
    status: 422,
    code: 'IDEMPOTENCY_KEY_REUSED',
    type: 'tag:jobgate,2026:problems:idempotency-key-reused',
  })
  t.strictSame(await dataKeys(client), before)
  t.equal(await client.llen('jobgate:{emails}:ready:5'), 1)
})

t.test('the same job written two ways replays; a different time does not', async (t) => {
  const { app } = await startGateway(t)
  const send = (key: string, payload: object) =>
    app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      headers: { 'idempotency-key': key },
      payload,
    })
  // A day ahead, whole seconds: as UTC, and the same instant an hour east of it.
  const at = new Date(Math.floor(Date.now() / 1000) * 1000 + 86_400_000)
  const utc = at.toISOString().replace('.000Z', 'Z')
  const east = `${new Date(at.getTime() + 3_600_000).toISOString().replace('Z', '')}+01:00`
  const same: [object, object][] = [
    [{ type: 'a' }, { type: 'a', delay_ms: 0 }],
    [
      { type: 'a', run_at: utc },
      { type: 'a', run_at: east },
    ],
  ]
  for (const [index, [first, again]] of same.entries()) {
    const created = await send(`same-${index}`, first)
    t.equal(created.statusCode, 202)
    const replay = await send(`same-${index}`, again)
    t.equal(replay.statusCode, 202, JSON.stringify(again))
    t.equal(replay.headers['idempotent-replayed'], 'true')
    t.equal(replay.json().id, created.json().id)
  }
  const later = new Date(at.getTime() + 1000).toISOString()
  t.equal((await send('same-1', { type: 'a', run_at: later })).statusCode, 422)
  t.equal((await send('same-0', { type: 'a', delay_ms: 1 })).statusCode, 422)
})

t.test('idempotency scope is per queue', async (t) => {
  const { app } = await startGateway(t)
  const send = (queue: string) =>
    app.inject({
      method: 'POST',
      url: `/v1/queues/${queue}/jobs`,
      headers: { 'idempotency-key': 'same' },
      payload: { type: 't' },
    })
  const a = await send('a')
  const b = await send('b')
  t.equal(b.headers['idempotent-replayed'], undefined)
  t.not(a.json().id, b.json().id)
})

t.test('X-Request-ID is the key when there is no Idempotency-Key, and is echoed', async (t) => {
  const { app } = await startGateway(t)
  const send = () =>
    app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      headers: { 'x-request-id': 'req-42' },
      payload: { type: 't' },
    })
  const first = await send()
  const second = await send()
  t.equal(first.headers['x-request-id'], 'req-42')
  t.equal(first.json().request_id, 'req-42')
  t.equal(first.json().idempotency_key, 'req-42')
  t.equal(second.headers['idempotent-replayed'], 'true')
  t.equal(second.json().id, first.json().id)
})

t.test('no key → accepted, not deduplicated; a request id is generated', async (t) => {
  const { app, client } = await startGateway(t)
  const send = () =>
    app.inject({ method: 'POST', url: '/v1/queues/q/jobs', payload: { type: 't' } })
  const first = await send()
  const second = await send()
  t.equal(first.statusCode, 202)
  t.equal(second.statusCode, 202)
  t.not(first.json().id, second.json().id)
  t.match(first.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  t.not(first.headers['x-request-id'], second.headers['x-request-id'])
  t.equal(first.json().idempotency_key, null)
  t.equal(await client.llen('jobgate:{q}:ready:5'), 2)
  t.strictSame(await client.keys('jobgate:{q}:idem:*'), [])
})

t.test('malformed idempotency keys → 400, nothing written', async (t) => {
  const { app, client } = await startGateway(t)
  const cases: [string, Record<string, string>][] = [
    ['256 characters', { 'idempotency-key': 'k'.repeat(256) }],
    ['a control character', { 'idempotency-key': 'abc\u0001def' }],
    ['a space', { 'idempotency-key': 'two words' }],
    ['an empty quoted key', { 'idempotency-key': '""' }],
    ['a backslash', { 'idempotency-key': 'a\\b' }],
    ['an invalid X-Request-ID used as the key', { 'x-request-id': 'x'.repeat(256) }],
  ]
  for (const [label, headers] of cases) {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      headers,
      payload: { type: 't' },
    })
    t.equal(res.statusCode, 400, label)
    t.equal(res.json().code, 'IDEMPOTENCY_KEY_INVALID', label)
    // Node reads header bytes one per character: the length shown is the bytes sent.
    if (label === '256 characters') t.match(res.json().detail, /\(got 256 bytes\)$/)
  }
  const edge = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    headers: { 'idempotency-key': `"${'k'.repeat(255)}"` },
    payload: { type: 't' },
  })
  t.equal(edge.statusCode, 202, 'a quoted key of 255 characters is fine')
  await client.flushall()
  const noop = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    headers: { 'idempotency-key': 'k'.repeat(256) },
    payload: { type: 't' },
  })
  t.equal(noop.statusCode, 400)
  t.strictSame(await dataKeys(client), [])
})

t.test('require-key mode: a submission without a key → 400', async (t) => {
  const { app, client } = await startGateway(t, { env: { IDEMPOTENCY_REQUIRED: 'true' } })
  const res = await app.inject({ method: 'POST', url: '/v1/queues/q/jobs', payload: { type: 't' } })
  t.equal(res.statusCode, 400)
  t.equal(res.json().code, 'IDEMPOTENCY_KEY_REQUIRED')
  t.strictSame(await dataKeys(client), [])
  const withKey = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    headers: { 'idempotency-key': 'k1' },
    payload: { type: 't' },
  })
  t.equal(withKey.statusCode, 202)
})

t.test('delay_ms → scheduled at the right due time', async (t) => {
  const { app, client } = await startGateway(t)
  const res = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    payload: { type: 't', delay_ms: 60_000 },
  })
  t.equal(res.statusCode, 202)
  const job = res.json()
  t.equal(job.state, 'scheduled')
  const created = Date.parse(job.created_at)
  t.equal(Date.parse(job.run_at), created + 60_000)
  t.equal(Number(await client.zscore('jobgate:{q}:scheduled', job.id)), created + 60_000)
  t.equal(await client.llen('jobgate:{q}:ready:5'), 0)
  const status = await app.inject({ method: 'GET', url: `/v1/queues/q/jobs/${job.id}` })
  t.equal(status.json().state, 'scheduled')
  t.equal(status.json().run_at, job.run_at)
})

t.test('run_at in the future → scheduled then; in the past → queued now', async (t) => {
  const { app, client } = await startGateway(t)
  const at = new Date(Date.now() + 3_600_000)
  at.setMilliseconds(0)
  const future = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    payload: { type: 't', run_at: at.toISOString() },
  })
  t.equal(future.json().state, 'scheduled')
  t.equal(future.json().run_at, at.toISOString())
  t.equal(Number(await client.zscore('jobgate:{q}:scheduled', future.json().id)), at.getTime())
  const past = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    payload: { type: 't', run_at: '2020-01-01T00:00:00Z' },
  })
  t.equal(past.json().state, 'queued')
  t.equal(past.json().run_at, past.json().created_at)
  // Before 1970 too: a time the enqueue script takes as no time at all would be a 500.
  for (const runAt of ['1969-12-31T23:59:59Z', '0001-01-01T00:00:00Z']) {
    const send = () =>
      app.inject({
        method: 'POST',
        url: '/v1/queues/q/jobs',
        headers: { 'idempotency-key': `before-1970-${runAt}` },
        payload: { type: 't', run_at: runAt },
      })
    const early = await send()
    t.equal(early.statusCode, 202, runAt)
    t.equal(early.json().state, 'queued')
    t.equal(early.json().run_at, early.json().created_at)
    t.ok((await client.lrange('jobgate:{q}:ready:5', 0, -1)).includes(early.json().id))
    const again = await send()
    t.equal(again.headers['idempotent-replayed'], 'true')
    t.equal(again.json().id, early.json().id)
  }
})

t.test('priority picks the ready list; ttl_ms and timeout_ms are stored', async (t) => {
  const { app, client } = await startGateway(t)
  const res = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    payload: {
      type: 't',
      priority: 9,
      ttl_ms: 5000,
      timeout_ms: 2000,
      backoff: { type: 'fixed', delay_ms: 250 },
    },
  })
  const job = res.json()
  t.equal(job.priority, 9)
  t.equal(Date.parse(job.expires_at), Date.parse(job.created_at) + 5000)
  t.equal(job.timeout_ms, 2000)
  t.strictSame(job.backoff, { type: 'fixed', delay_ms: 250, max_delay_ms: 3600000, jitter: true })
  t.strictSame(await client.lrange('jobgate:{q}:ready:9', 0, -1), [job.id])
})

t.test('unknown job → 404 problem', async (t) => {
  const { app } = await startGateway(t)
  const res = await app.inject({
    method: 'GET',
    url: '/v1/queues/q/jobs/0b6c1f6e-3d3a-4b8e-9a55-0d1c4f0f9a21',
  })
  t.equal(res.statusCode, 404)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.match(res.json(), { code: 'JOB_NOT_FOUND', status: 404, title: 'No such job' })
})

t.test('a full queue → 503 QUEUE_FULL with Retry-After; accepted again once drained', async (t) => {
  const { app, client } = await startGateway(t, { env: { MAX_QUEUE_DEPTH: '2' } })
  const send = () =>
    app.inject({ method: 'POST', url: '/v1/queues/q/jobs', payload: { type: 't' } })
  t.equal((await send()).statusCode, 202)
  t.equal((await send()).statusCode, 202)
  const full = await send()
  t.equal(full.statusCode, 503)
  t.equal(full.headers['retry-after'], '1')
  t.equal(full.json().code, 'QUEUE_FULL')
  t.equal(await client.llen('jobgate:{q}:ready:5'), 2)
  const reserved = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs:reserve',
    payload: { worker: 'w' },
  })
  t.equal(reserved.statusCode, 200, 'a worker takes one job')
  t.equal((await send()).statusCode, 202, 'accepted again')
  t.equal((await send()).statusCode, 503, 'and full again')
})

t.test('a poller revalidates with If-None-Match: 304 until the job changes', async (t) => {
  const { app } = await startGateway(t)
  const created = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    payload: { type: 't', payload: { n: 1 } },
  })
  const location = String(created.headers.location)
  const poll = (ifNoneMatch?: string) =>
    app.inject({
      method: 'GET',
      url: location,
      headers: ifNoneMatch === undefined ? {} : { 'if-none-match': ifNoneMatch },
    })
  const first = await poll()
  t.equal(first.statusCode, 200)
  const etag = String(first.headers.etag)
  t.match(etag, /^"[A-Za-z0-9_-]{27}"$/)
  t.equal(first.headers['cache-control'], 'no-cache')

  const same = await poll(etag)
  t.equal(same.statusCode, 304, 'nothing changed')
  t.equal(same.body, '')
  t.equal(same.headers.etag, etag)
  t.equal(same.headers['content-type'], undefined)
  t.equal((await poll(`W/${etag}`)).statusCode, 304, 'a weak tag matches too')
  t.equal((await poll('"other", *')).statusCode, 304, '* matches any')
  t.equal((await poll('"other"')).statusCode, 200)

  const reserved = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs:reserve',
    payload: { worker: 'w' },
  })
  t.equal(reserved.statusCode, 200)
  const changed = await poll(etag)
  t.equal(changed.statusCode, 200, 'leased: a new answer')
  t.equal(changed.json().state, 'active')
  t.not(changed.headers.etag, etag)

  const missing = await app.inject({
    method: 'GET',
    url: '/v1/queues/q/jobs/00000000-0000-4000-8000-000000000000',
    headers: { 'if-none-match': '*' },
  })
  t.equal(missing.statusCode, 404, 'only a 200 is ever turned into a 304')
  t.equal(missing.headers.etag, undefined)
})
