import { connect } from 'node:net'
import t from 'tap'
import { QUEUE_COUNTERS } from '../src/queue-view.js'
import { startGateway } from './helpers/gateway.js'
import { gatewayOnOwnRedis } from './helpers/gateway-process.js'
import { parsePrometheus, sample } from './helpers/prometheus.js'

t.test('/metrics is Prometheus text and its counters move by exactly what happened', async (t) => {
  const { app } = await startGateway(t, { env: { RATE_LIMIT_WORK: '3/1m' } })
  const scrape = async () => {
    const res = await app.inject({ method: 'GET', url: '/metrics' })
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
    return parsePrometheus(res.body)
  }
  const submit = (key: string, payload: object = {}) =>
    app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      headers: { 'idempotency-key': key },
      payload: { type: 't', payload },
    })
  await submit('warm-up')
  const before = await scrape()

  for (const key of ['a', 'b', 'c']) t.equal((await submit(key)).statusCode, 202)
  t.equal((await submit('a')).statusCode, 202)
  t.equal((await submit('b')).statusCode, 202)
  t.equal((await submit('a', { other: true })).statusCode, 422)
  t.equal(
    (await app.inject({ method: 'POST', url: '/v1/queues/q/jobs', payload: { type: 1 } }))
      .statusCode,
    400,
  )
  const reserve = () =>
    app.inject({ method: 'POST', url: '/v1/queues/q/jobs:reserve', payload: { worker: 'w' } })
  const reserved = (await reserve()).json()
  await app.inject({
    method: 'POST',
    url: `/v1/queues/q/jobs/${reserved.job.id}:ack`,
    payload: { lease_token: reserved.lease.token },
  })
  // reserve, ack, reserve: the work scope's three requests (one count for all its routes)
  t.equal((await reserve()).statusCode, 200)
  t.equal((await reserve()).statusCode, 429)

  const after = await scrape()
  const delta = (name: string, labels: Record<string, string> = {}) =>
    sample(after, name, labels) - sample(before, name, labels)
  t.equal(delta('jobgate_jobs_enqueued_total', { queue: 'q' }), 3)
  t.equal(delta('jobgate_jobs_replayed_total', { queue: 'q' }), 2)
  t.equal(delta('jobgate_jobs_rejected_total', { code: 'IDEMPOTENCY_KEY_REUSED' }), 1)
  t.equal(delta('jobgate_jobs_rejected_total', { code: 'VALIDATION_FAILED' }), 1)
  t.equal(delta('jobgate_rate_limited_total', { scope: 'work' }), 1)
  const route = { method: 'POST', route: '/v1/queues/{queue}/jobs' }
  t.equal(delta('jobgate_http_requests_total', { ...route, status: '202' }), 5)
  t.equal(delta('jobgate_http_requests_total', { ...route, status: '422' }), 1)
  t.equal(delta('jobgate_http_request_duration_seconds_count', { ...route, status: '202' }), 5)
  t.equal(delta('jobgate_queue_jobs_total', { queue: 'q', outcome: 'succeeded' }), 1)
  t.equal(delta('jobgate_queue_jobs_total', { queue: 'q', outcome: 'enqueued' }), 3)
  t.strictSame(
    [...after.keys()]
      .filter((series) => /^jobgate_queue_jobs_total\{.*queue="q"/.test(series))
      .map((series) => /outcome="([a-z_]+)"/.exec(series)?.[1])
      .sort(),
    [...QUEUE_COUNTERS].sort(),
    'one series per outcome, and only outcomes',
  )
  t.equal(sample(after, 'jobgate_queue_jobs', { queue: 'q', state: 'queued' }), 2)
  t.equal(sample(after, 'jobgate_queue_jobs', { queue: 'q', state: 'active' }), 1)
  t.equal(sample(after, 'jobgate_queues'), 1)
  t.equal(sample(after, 'jobgate_breaker_state'), 0)
  t.ok(sample(after, 'jobgate_process_resident_memory_bytes') > 0, 'process metrics too')
})

t.test('while Redis does not answer, per-queue metrics are absent, not stale', async (t) => {
  // No rate limit: its counter is a script call too.
  const { app, redis, client } = await startGateway(t, { env: { RATE_LIMIT: 'off' } })
  await app.inject({ method: 'POST', url: '/v1/queues/q/jobs', payload: { type: 't' } })
  const scrape = async () =>
    parsePrometheus((await app.inject({ method: 'GET', url: '/metrics' })).body)
  await scrape() // the counts script loaded: each call below is one EVALSHA
  const scripts = async () =>
    Number(/cmdstat_evalsha:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0)
  const calls = await scripts()
  const before = await scrape()
  t.equal((await scripts()) - calls, 1, 'one counts call for the one queue: the gauges share it')
  t.equal(sample(before, 'jobgate_queue_metrics_up'), 1)
  t.equal(sample(before, 'jobgate_queues'), 1)
  t.equal(sample(before, 'jobgate_queue_jobs_total', { queue: 'q', outcome: 'enqueued' }), 1)
  await redis.kill()
  const during = await scrape()
  t.equal(sample(during, 'jobgate_queue_metrics_up'), 0)
  t.ok(Number.isNaN(sample(during, 'jobgate_queues')), 'jobgate_queues is NaN')
  // (The gateway's own counters, such as jobgate_jobs_enqueued_total, are not read from Redis.)
  const fromRedis = [...during.keys()].filter((name) => /^jobgate_queue_\w+\{/.test(name))
  t.strictSame(fromRedis, [], 'no per-queue sample read from Redis')
})

t.test('submissions to new queues while scrapes run are all counted', async (t) => {
  const { app } = await startGateway(t)
  const scrape = async () =>
    parsePrometheus((await app.inject({ method: 'GET', url: '/metrics' })).body)
  let scraping = true
  const scrapes = (async () => {
    let count = 0
    while (scraping) {
      await scrape()
      count += 1
    }
    return count
  })()
  const queues = Array.from({ length: 300 }, (_, n) => `new-${n}`)
  const posters = Array.from({ length: 8 }, async (_, poster) => {
    let accepted = 0
    for (let n = poster; n < queues.length; n += 8) {
      const res = await app.inject({
        method: 'POST',
        url: `/v1/queues/${queues[n]}/jobs`,
        payload: { type: 't' },
      })
      if (res.statusCode === 202) accepted += 1
    }
    return accepted
  })
  const accepted = (await Promise.all(posters)).reduce((sum, n) => sum + n, 0)
  scraping = false
  t.ok((await scrapes) > 1, 'scrapes ran alongside the submissions')
  t.equal(accepted, queues.length)
  const after = await scrape()
  const missing = queues.filter(
    (queue) => sample(after, 'jobgate_jobs_enqueued_total', { queue }) !== 1,
  )
  t.strictSame(missing, [], "every new queue's submission is counted once")
})

t.test(
  'a request whose client leaves before the answer: an access line and a count, status 499',
  async (t) => {
    const { gateway } = await gatewayOnOwnRedis(t, { env: { LOG_LEVEL: 'info' } })
    const leave = async (path: string, body: string, ms: number) => {
      const socket = connect(Number(new URL(gateway.url).port), '127.0.0.1')
      socket.on('error', () => undefined)
      socket.write(
        `POST ${path} HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n` +
          `x-request-id: leaving-${ms}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      )
      await new Promise((resolve) => setTimeout(resolve, ms))
      socket.destroy()
    }
    const submitted = await fetch(`${gateway.url}/v1/queues/q/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"type":"t","delay_ms":60000}',
    })
    t.equal(submitted.status, 202)
    // A worker killed in its long poll, and a watcher of an event stream leaving.
    await leave('/v1/queues/q/jobs:reserve', '{"worker":"w","wait_ms":10000}', 300)
    const watcher = new AbortController()
    const stream = await fetch(`${gateway.url}/v1/queues/q/events`, { signal: watcher.signal })
    t.equal(stream.status, 200)
    watcher.abort()

    const left = await gateway.waitForLog(
      (line) => line.request_id === 'leaving-300' && line.status !== undefined,
    )
    t.match(left, {
      level: 30,
      msg: 'client closed the connection before the answer was complete',
      method: 'POST',
      url: '/v1/queues/q/jobs:reserve',
      status: 499,
    })
    t.ok(Number(left.ms) >= 290, `ms counts until the client left (${left.ms})`)
    const streamLine = await gateway.waitForLog(
      (line) => line.url === '/v1/queues/q/events' && line.status !== undefined,
    )
    t.match(streamLine, { status: 200, msg: /^client closed the connection/ })

    const scraped = parsePrometheus(await (await fetch(`${gateway.url}/metrics`)).text())
    const requests = (route: string, method: string, status: string) =>
      sample(scraped, 'jobgate_http_requests_total', { method, route, status })
    t.equal(requests('/v1/queues/{queue}/jobs:reserve', 'POST', '499'), 1)
    t.equal(
      sample(scraped, 'jobgate_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/v1/queues/{queue}/jobs:reserve',
        status: '499',
      }),
      1,
    )
    t.equal(requests('/v1/queues/{queue}/events', 'GET', '200'), 1, 'the stream, counted once')
    t.equal(
      gateway.lines.filter((line) => line.request_id === 'leaving-300' && 'status' in line).length,
      1,
      'one access line',
    )
  },
)
