import { connect } from 'node:net'
import type { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { newApiKey, parseApiKeys } from '../src/auth.js'
import type { JsonSchema } from '../src/contract.js'
import { EventStream, STALL_MS } from '../src/event-stream.js'
import { compareIds, STREAM_START } from '../src/queue/event-feed.js'
import { QueueKeys } from '../src/queue/keys.js'
import { defineScripts, queueScript } from '../src/queue/scripts.js'
import { EventReader, serverSockets, stalledWatcher } from './helpers/event-source.js'
import { dataKeys, type Gateway, startGateway, startGatewayBehindProxy } from './helpers/gateway.js'
import { sleep, until } from './helpers/load.js'
import { PhpWorker } from './helpers/php-worker.js'
import { parsePrometheus, sample } from './helpers/prometheus.js'

interface Transition {
  queue: string
  job: string
  state: string
  at: string
}

async function submit(gateway: Gateway, queue: string, body: object = { type: 'echo' }) {
  const res = await fetch(`${gateway.url}/v1/queues/${queue}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  if (res.status !== 202) throw new Error(`submit: ${res.status} ${await res.text()}`)
  return ((await res.json()) as { id: string }).id
}

async function work(gateway: Gateway, queue: string, outcome: 'ack' | 'fail' = 'ack') {
  const url = `${gateway.url}/v1/queues/${queue}/jobs`
  const post = (path: string, body: object) =>
    fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
  const reserved = (await (await post(':reserve', { worker: 'w1' })).json()) as {
    job: { id: string }
    lease: { token: string }
  }
  const res = await post(`/${reserved.job.id}:${outcome}`, {
    lease_token: reserved.lease.token,
    ...(outcome === 'fail' ? { error: { message: 'no' } } : {}),
  })
  if (res.status !== 200) throw new Error(`${outcome}: ${res.status}`)
  return reserved.job.id
}

async function watch(t: Test, url: string, headers: Record<string, string> = {}) {
  const reader = await EventReader.open(url, headers)
  t.teardown(() => reader.close())
  return reader
}

/** Every transition's data validates against QueueEvent, and ids only grow. */
function checkEvents(t: Test, gateway: Gateway, reader: EventReader): void {
  const schemas = gateway.checker.document.components.schemas as Record<string, JsonSchema>
  const ids = reader.events.filter((e) => e.type === 'message').map((e) => e.id ?? '')
  const violations: string[] = []
  for (const event of reader.events) {
    if (event.type !== 'message' && event.type !== 'gap') violations.push(`type ${event.type}`)
    const schema = event.type === 'gap' ? schemas.StreamGap : schemas.QueueEvent
    const error = gateway.checker.validate(schema ?? {}, JSON.parse(event.data))
    if (error !== null) violations.push(`${event.id}: ${error}`)
  }
  t.strictSame(violations, [], `${reader.events.length} events match their openapi.yaml schemas`)
  t.ok(
    ids.every((id, i) => i === 0 || compareIds(ids[i - 1] ?? '', id) < 0),
    'event ids strictly increase',
  )
}

t.test('a queue stream: headers, then each transition live, in order', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  await submit(gateway, 'q') // the queue exists
  await work(gateway, 'q')
  const reader = await watch(t, `${gateway.url}/v1/queues/q/events`, { 'x-request-id': 'dash-1' })
  t.equal(reader.status, 200)
  t.equal(reader.header('content-type'), 'text/event-stream; charset=utf-8')
  t.equal(reader.header('cache-control'), 'no-cache')
  t.equal(reader.header('x-request-id'), 'dash-1')

  const id = await submit(gateway, 'q', { type: 'echo', payload: { n: 1 } })
  await work(gateway, 'q')
  const second = await submit(gateway, 'q', { type: 'echo', delay_ms: 60_000 })
  await reader.received(4)
  const messages = reader.messages<Transition>()
  t.strictSame(
    messages.map(({ job, state }) => [job, state]),
    [
      [id, 'queued'],
      [id, 'active'],
      [id, 'succeeded'],
      [second, 'scheduled'],
    ],
    'only what happened after connecting, in order',
  )
  t.equal(reader.retry, 2000)
  t.ok(messages.every((m) => m.queue === 'q'))
  // The stream ids are Redis's own: the same as XRANGE shows.
  const entries = await gateway.client.xrange('jobgate:{q}:events', '-', '+')
  t.strictSame(
    reader.events.map((e) => e.id),
    entries.slice(-4).map(([entryId]) => entryId),
  )
  checkEvents(t, gateway, reader)
  t.notOk(reader.done, 'a queue stream stays open')
})

t.test(
  'watching one job: its whole history, then the stream ends; a real PHP worker runs it',
  async (t) => {
    const gateway = await startGateway(t, { listen: true })
    const other = await submit(gateway, 'q', { type: 'echo' })
    const id = await submit(gateway, 'q', { type: 'echo', payload: { hello: 'world' } })
    // Connected after the job was queued: its creation still comes first.
    const reader = await watch(t, `${gateway.url}/v1/queues/q/events?job=${id}`)
    t.equal(reader.status, 200)
    await reader.received(1)
    const worker = new PhpWorker({ redisUrl: gateway.redis.url })
    t.teardown(() => worker.stop())
    await reader.ended
    t.strictSame(
      reader.messages<Transition>().map(({ job, state }) => [job, state]),
      [
        [id, 'queued'],
        [id, 'active'],
        [id, 'succeeded'],
      ],
      'only the watched job, ending at its final state',
    )
    t.notOk(
      reader.messages<Transition>().some((m) => m.job === other),
      'other jobs are not sent',
    )
    checkEvents(t, gateway, reader)

    // Reconnecting after the final event: nothing left, 204 (an EventSource stops there).
    const last = reader.events.at(-1)?.id ?? ''
    const again = await fetch(`${gateway.url}/v1/queues/q/events?job=${id}`, {
      headers: { 'last-event-id': last },
    })
    t.equal(again.status, 204)
    t.equal(await again.text(), '')
    // Without a position the finished job's history is sent again, then the stream ends.
    const replay = await watch(t, `${gateway.url}/v1/queues/q/events?job=${id}`)
    await replay.ended
    t.strictSame(
      replay.messages<Transition>().map((m) => m.state),
      ['queued', 'active', 'succeeded'],
    )
  },
)

t.test(
  'watching a job redriven from the dead set: its old death does not end the stream',
  async (t) => {
    const gateway = await startGateway(t, { listen: true })
    const id = await submit(gateway, 'q', { type: 'echo', max_attempts: 1 })
    const redrive = async () => {
      await sleep(5) // each step in a millisecond of its own, as transitions a person causes are
      const res = await fetch(`${gateway.url}/v1/queues/q/dead/${id}:redrive`, { method: 'POST' })
      t.equal(res.status, 200)
      await sleep(5)
    }
    await work(gateway, 'q', 'fail')
    await redrive()

    const reader = await watch(t, `${gateway.url}/v1/queues/q/events?job=${id}`)
    await reader.received(4)
    await sleep(200)
    t.notOk(reader.done, 'still open after the old death')
    t.strictSame(
      reader.messages<Transition>().map((m) => m.state),
      ['queued', 'active', 'dead', 'queued'],
    )
    await work(gateway, 'q', 'fail')
    await reader.ended
    t.strictSame(
      reader.messages<Transition>().map((m) => m.state),
      ['queued', 'active', 'dead', 'queued', 'active', 'dead'],
      'it ends at the death that is final now',
    )

    // Dead again: the whole history, ending at the latest death; redriven and run, at success.
    const replay = await watch(t, `${gateway.url}/v1/queues/q/events?job=${id}`)
    await replay.ended
    t.equal(replay.messages().length, 6)
    await redrive()
    await work(gateway, 'q')
    const done = await watch(t, `${gateway.url}/v1/queues/q/events?job=${id}`)
    await done.ended
    t.strictSame(
      done.messages<Transition>().map((m) => m.state),
      ['queued', 'active', 'dead', 'queued', 'active', 'dead', 'queued', 'active', 'succeeded'],
    )
  },
)

t.test(
  'a watched job that ends in the millisecond of its latest transition ends the stream',
  async (t) => {
    const gateway = await startGateway(t, { listen: true })
    const id = await submit(gateway, 'q')
    await fetch(`${gateway.url}/v1/queues/q/jobs:reserve`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"worker":"w1"}',
    })
    const record = (await (await fetch(`${gateway.url}/v1/queues/q/jobs/${id}`)).json()) as {
      history: { state: string; at: string }[]
    }
    const latest = String(Date.parse(record.history.at(-1)?.at ?? ''))
    const add = (state: string) =>
      gateway.client.xadd('jobgate:{q}:events', '*', 'job', id, 'state', state, 'at', latest)
    // A final state in that millisecond before the watcher looked: the past, not the end.
    await add('dead')
    const reader = await watch(t, `${gateway.url}/v1/queues/q/events?job=${id}`)
    await reader.received(3)
    await sleep(200)
    t.notOk(reader.done, 'a final state from before the watcher came does not end it')
    // The ack, in the same millisecond as the reserve, but after the watcher looked.
    await add('succeeded')
    t.ok(await reader.until((r) => r.done, 3000), 'the stream ends')
    t.strictSame(
      reader.messages<Transition>().map((m) => m.state),
      ['queued', 'active', 'dead', 'succeeded'],
    )
  },
)

t.test('a job stream resumed from before the job was made: no false gap', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  await submit(gateway, 'q')
  const before = await submit(gateway, 'q')
  const id = await submit(gateway, 'q')
  // The cap took the first entry. The oldest left is another job's, made just before this one:
  // it lies after any position before this job's creation, so entries before it may have been
  // dropped, but none of them was this job's.
  const entries = (await gateway.client.xrange('jobgate:{q}:events', '-', '+')) as [
    string,
    string[],
  ][]
  const oldest = entries.find(([, fields]) => fields.includes(before))?.[0] ?? ''
  await gateway.client.xtrim('jobgate:{q}:events', 'MINID', oldest)
  const job = (await (await fetch(`${gateway.url}/v1/queues/q/jobs/${id}`)).json()) as {
    created_at: string
  }
  // Where the first connection's preamble puts an EventSource (the creation margin, 1 s).
  const preamble = `${Date.parse(job.created_at) - 1000}-0`
  for (const position of [preamble, '0-1']) {
    const resumed = await watch(t, `${gateway.url}/v1/queues/q/events?job=${id}`, {
      'last-event-id': position,
    })
    await resumed.received(1)
    await sleep(100)
    t.strictSame(
      resumed.events.map((event) => event.type),
      ['message'],
      `from ${position}: the job's entry, no gap`,
    )
    resumed.close()
  }
})

t.test('Last-Event-ID resumes exactly after the last event seen', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  await submit(gateway, 'q')
  await work(gateway, 'q')
  const first = await watch(t, `${gateway.url}/v1/queues/q/events`)
  const a = await submit(gateway, 'q')
  await first.received(1)
  first.close()
  await first.ended
  const seen = first.events.at(-1)?.id ?? ''
  // While disconnected:
  const b = await submit(gateway, 'q')
  await work(gateway, 'q')
  await work(gateway, 'q', 'fail')

  const resumed = await watch(t, `${gateway.url}/v1/queues/q/events`, { 'last-event-id': seen })
  const c = await submit(gateway, 'q')
  await resumed.received(6)
  await sleep(100)
  t.strictSame(
    resumed.messages<Transition>().map(({ job, state }) => [job, state]),
    [
      [b, 'queued'],
      [a, 'active'],
      [a, 'succeeded'],
      [b, 'active'],
      [b, 'dead'],
      [c, 'queued'],
    ],
    'the missed transitions, then live ones: none lost, none repeated',
  )
  checkEvents(t, gateway, resumed)

  const empty = await watch(t, `${gateway.url}/v1/queues/q/events?since=0`, {
    'last-event-id': '',
  })
  t.equal(empty.status, 200, 'an empty Last-Event-ID is no position: `since` counts')
  await empty.received(10)
  t.equal(empty.messages().length, 10)

  const since = await watch(t, `${gateway.url}/v1/queues/q/events?since=0`)
  await since.received(10)
  t.equal(since.messages().length, 10, '`since=0`: everything the stream holds')
  t.notOk(
    since.events.some((e) => e.type === 'gap'),
    'no gap while the stream holds everything',
  )
})

t.test('a catch-up of many pages racing live writes: every entry once, in order', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  await submit(gateway, 'q')
  const key = 'jobgate:{q}:events'
  const add = (n: number) => {
    const pipeline = gateway.client.pipeline()
    for (let i = 0; i < n; i++)
      pipeline.xadd(key, '*', 'job', `j-${i}`, 'state', 'queued', 'at', '1')
    return pipeline.exec()
  }
  await add(1_800)
  // Entries keep arriving while the stream pages through the backlog and goes live.
  let writing = true
  const writer = (async () => {
    while (writing) await add(20)
  })()
  const reader = await watch(t, `${gateway.url}/v1/queues/q/events?since=0`)
  await sleep(300)
  writing = false
  await writer
  const all = (await gateway.client.xrange(key, '-', '+')).map(([id]) => id)
  t.ok(all.length > 1_900, `${all.length} entries`)
  await reader.received(all.length, 10_000)
  await sleep(100)
  t.strictSame(
    reader.events.map((e) => e.id),
    all,
    'exactly the stream: none skipped at the seam, none twice',
  )
})

t.test('a capped stream: a gap event names the oldest entry left', async (t) => {
  const gateway = await startGateway(t, { listen: true, env: { EVENTS_MAX_LEN: '100' } })
  for (let i = 0; i < 300; i++) await submit(gateway, 'q')
  const info = (await gateway.client.xinfo('STREAM', 'jobgate:{q}:events')) as unknown[]
  const firstEntry = info[info.indexOf('first-entry') + 1] as [string, string[]]
  const length = Number(info[info.indexOf('length') + 1])
  t.ok(length < 300, `the stream was trimmed to ${length}`)

  const reader = await watch(t, `${gateway.url}/v1/queues/q/events?since=0`)
  await reader.received(length + 1)
  t.equal(reader.events[0]?.type, 'gap')
  t.strictSame(JSON.parse(reader.events[0]?.data ?? ''), { queue: 'q', oldest_id: firstEntry[0] })
  t.equal(reader.events[1]?.id, firstEntry[0], 'then every entry left, from the oldest')
  t.equal(reader.messages().length, length)
  checkEvents(t, gateway, reader)

  // The gap's own id is the position just before the oldest entry: resuming there, no gap.
  t.equal(compareIds(reader.events[0]?.id ?? '', firstEntry[0]), -1)
  const resumed = await watch(t, `${gateway.url}/v1/queues/q/events`, {
    'last-event-id': reader.events[0]?.id ?? '',
  })
  await resumed.received(length)
  t.equal(resumed.events[0]?.id, firstEntry[0], 'resumed at the oldest entry, no second gap')

  // A position the stream still holds: no gap.
  const recent = await watch(t, `${gateway.url}/v1/queues/q/events`, {
    'last-event-id': reader.events.at(-2)?.id ?? '',
  })
  await recent.received(1)
  t.strictSame(
    recent.events.map((e) => e.type),
    ['message'],
  )
})

t.test('many watchers of a queue share one Redis connection', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  await submit(gateway, 'q')
  await submit(gateway, 'other')
  const readers = await Promise.all(
    Array.from({ length: 20 }, () => watch(t, `${gateway.url}/v1/queues/q/events`)),
  )
  const elsewhere = await watch(t, `${gateway.url}/v1/queues/other/events`)
  t.equal(gateway.app.store.events.followedQueues, 2, 'one follower per watched queue')
  const scrape = async () =>
    sample(
      parsePrometheus(await (await fetch(`${gateway.url}/metrics`)).text()),
      'jobgate_event_streams',
    )
  t.equal(await scrape(), 21, 'jobgate_event_streams counts the open streams')
  const id = await submit(gateway, 'q')
  for (const reader of readers) await reader.received(1)
  t.ok(
    readers.every((r) => r.messages<Transition>()[0]?.job === id),
    'every watcher got the event',
  )
  t.equal(elsewhere.events.length, 0, "another queue's watcher got nothing")
  for (const reader of readers) reader.close()
  t.ok(
    await until(() => gateway.app.store.events.followedQueues === 1, 2000),
    'the follower stops with its last watcher',
  )
  t.equal(await scrape(), 1)
  const streamed = { method: 'GET', route: '/v1/queues/{queue}/events', status: '200' }
  let samples = new Map<string, number>()
  for (const deadline = Date.now() + 2000; Date.now() < deadline; await sleep(50)) {
    samples = parsePrometheus(await (await fetch(`${gateway.url}/metrics`)).text())
    if (sample(samples, 'jobgate_http_requests_total', streamed) === 20) break
  }
  t.equal(
    sample(samples, 'jobgate_http_requests_total', streamed),
    20,
    'closed streams are counted',
  )
  t.equal(
    sample(samples, 'jobgate_http_request_duration_seconds_count', streamed),
    0,
    'but not timed: a stream lasts as long as its watcher',
  )
})

t.test('bad input: a problem, and nothing written', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  const id = await submit(gateway, 'q')
  const before = await dataKeys(gateway.client)
  const cases: [string, Record<string, string>, number, string][] = [
    ['/v1/queues/q/events?since=abc', {}, 400, 'VALIDATION_FAILED'],
    ['/v1/queues/q/events?since=1-2-3', {}, 400, 'VALIDATION_FAILED'],
    ['/v1/queues/q/events?since=5', {}, 400, 'VALIDATION_FAILED'],
    ['/v1/queues/q/events?unknown=1', {}, 400, 'VALIDATION_FAILED'],
    ['/v1/queues/q/events?job=not%20an%20id', {}, 400, 'VALIDATION_FAILED'],
    ['/v1/queues/q/events', { 'last-event-id': 'yesterday' }, 400, 'VALIDATION_FAILED'],
    ['/v1/queues/bad%20name/events', {}, 400, 'VALIDATION_FAILED'],
    ['/v1/queues/nowhere/events', {}, 404, 'QUEUE_NOT_FOUND'],
    ['/v1/queues/q/events?job=no-such-job', {}, 404, 'JOB_NOT_FOUND'],
  ]
  for (const [path, headers, status, code] of cases) {
    const res = await fetch(`${gateway.url}${path}`, { headers })
    t.equal(res.status, status, path)
    t.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8', path)
    t.equal(((await res.json()) as { code: string }).code, code, path)
  }
  t.strictSame(await dataKeys(gateway.client), before, 'the keyspace is unchanged')
  t.equal(gateway.app.store.events.followedQueues, 0, 'no follower was left behind')
  t.ok(id)
})

t.test('auth: the read scope is required', async (t) => {
  const reader = newApiKey('dashboard', ['read'])
  const producer = newApiKey('producer', ['produce'])
  const gateway = await startGateway(t, {
    listen: true,
    env: { API_KEYS: `${reader.entry},${producer.entry}` },
  })
  const url = `${gateway.url}/v1/queues/q/events`
  const none = await fetch(url)
  t.equal(none.status, 401)
  t.match(none.headers.get('www-authenticate') ?? '', /^Bearer/)
  const forbidden = await fetch(url, { headers: { authorization: `Bearer ${producer.key}` } })
  t.equal(forbidden.status, 403)
  const res = await fetch(`${gateway.url}/v1/queues/q/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${producer.key}`, 'content-type': 'application/json' },
    body: '{"type":"t"}',
  })
  t.equal(res.status, 202)
  const stream = await watch(t, url, { 'x-api-key': reader.key })
  t.equal(stream.status, 200)
})

t.test('a bad request pipelined behind a stream closes it; no answer lands inside', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  await submit(gateway, 'q')
  const { port } = new URL(gateway.url)
  let received = ''
  const socket = connect(Number(port), '127.0.0.1')
  t.teardown(() => socket.destroy())
  socket.on('data', (chunk) => {
    received += chunk
  })
  const closed = new Promise((resolve) => socket.on('close', resolve))
  socket.write('GET /v1/queues/q/events HTTP/1.1\r\nHost: x\r\n\r\n')
  t.ok(await until(() => received.includes('retry:'), 5000), 'the stream is open')
  socket.write('GARBAGE / HTTP/1.1\r\n\r\n')
  await closed
  t.match(received, /^HTTP\/1\.1 200 /)
  t.notMatch(received, /HTTP\/1\.1 400/, 'no second status line inside the stream')
})

t.test('a reload that revokes or rescopes a key ends the streams it opened', async (t) => {
  const keep = newApiKey('dashboard', ['read'])
  const revoked = newApiKey('old-dashboard', ['read'])
  const rescoped = newApiKey('ops', ['admin'])
  const entries = (...keys: { entry: string }[]) => keys.map((key) => key.entry).join(',')
  const gateway = await startGateway(t, {
    listen: true,
    env: { API_KEYS: entries(keep, revoked, rescoped) },
  })
  const created = await fetch(`${gateway.url}/v1/queues/q/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${rescoped.key}`, 'content-type': 'application/json' },
    body: '{"type":"t"}',
  })
  t.equal(created.status, 202)
  const url = `${gateway.url}/v1/queues/q/events`
  const watchWith = (key: { key: string }) => watch(t, url, { authorization: `Bearer ${key.key}` })
  const kept = await watchWith(keep)
  const gone = await watchWith(revoked)
  const narrowed = await watchWith(rescoped)
  t.strictSame([kept.status, gone.status, narrowed.status], [200, 200, 200])

  const produceOnly = newApiKey('ops', ['produce']).entry.replace(/[0-9a-f]{64}$/, '')
  const opsNow = `${produceOnly}${rescoped.entry.slice(-64)}` // the same key, now produce only
  gateway.app.keyRing.replace(parseApiKeys(entries(keep, { entry: opsNow })))
  t.ok(
    await until(() => gone.done && narrowed.done, 5000),
    'the revoked and the rescoped key lost their streams',
  )
  const entry = await addEntry(gateway.client, 'after-reload')
  await kept.received(1, 5000)
  t.equal(kept.events.at(-1)?.id, entry, 'a key still allowed to read keeps its stream')
  t.notOk(kept.done)
})

t.test(
  'EVENT_STREAMS_MAX: one stream too many gets 503, and a slot frees when one ends',
  async (t) => {
    const gateway = await startGateway(t, { listen: true, env: { EVENT_STREAMS_MAX: '1' } })
    await submit(gateway, 'q')
    const first = await watch(t, `${gateway.url}/v1/queues/q/events`)
    t.equal(first.status, 200)
    const refused = await fetch(`${gateway.url}/v1/queues/q/events`)
    t.equal(refused.status, 503)
    t.equal(refused.headers.get('retry-after'), '5')
    t.equal(((await refused.json()) as { code: string }).code, 'TOO_MANY_EVENT_STREAMS')
    first.close()
    let again: EventReader | null = null
    t.ok(
      await until(() => gateway.app.store.events.followedQueues === 0, 2000),
      'the closed stream released its slot',
    )
    again = await watch(t, `${gateway.url}/v1/queues/q/events`)
    t.equal(again.status, 200)
  },
)

t.test('a quiet stream sends keep-alive comments', async (t) => {
  const gateway = await startGateway(t, { listen: true, env: { EVENT_KEEPALIVE: '100ms' } })
  await submit(gateway, 'q')
  const reader = await watch(t, `${gateway.url}/v1/queues/q/events`)
  t.ok(await reader.until((r) => r.comments.length >= 2, 2000))
  t.ok(reader.comments.every((c) => c === 'keep-alive'))
  t.equal(reader.events.length, 0)
})

/** `n` entries added straight to the queue's stream, as the scripts write them. */
async function addEntries(gateway: Gateway, n: number, extra: string[] = []): Promise<void> {
  const pipeline = gateway.client.pipeline()
  for (let i = 0; i < n; i++) {
    pipeline.xadd(
      'jobgate:{q}:events',
      ...extra,
      '*',
      'job',
      `j-${i}`,
      'state',
      'queued',
      'at',
      '1',
    )
  }
  await pipeline.exec()
}

/** One entry added straight to the queue's stream; its id. */
function addEntry(client: Redis, job: string): Promise<string | null> {
  return client.xadd('jobgate:{q}:events', '*', 'job', job, 'state', 'queued', 'at', '1')
}

t.test('a watcher that does not read is cut off: stream ended, connection dropped', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  await submit(gateway, 'q')
  const socketOf = serverSockets(gateway.app.server)
  const watcher = await stalledWatcher(`${gateway.url}/v1/queues/q/events`)
  t.teardown(() => watcher.destroy())
  t.equal(watcher.status, 200)
  await addEntries(gateway, 100_000) // about 15 MB, more than the socket buffers hold
  t.ok(
    await until(() => gateway.app.store.events.followedQueues === 0, 5000),
    'the stream was ended and its follower stopped',
  )
  t.equal(socketOf(watcher.localPort)?.destroyed, true, 'its connection is dropped')
})

t.test(
  'a watcher catching up slowly from far back is cut off, not holding live traffic',
  async (t) => {
    const gateway = await startGateway(t, { listen: true })
    await submit(gateway, 'q')
    await addEntries(gateway, 50_000) // a backlog of about 7 MB of events
    const socketOf = serverSockets(gateway.app.server)
    const watcher = await stalledWatcher(`${gateway.url}/v1/queues/q/events?since=0`)
    t.teardown(() => watcher.destroy())
    t.equal(watcher.status, 200)
    await sleep(300) // the catch-up stalls once the socket buffers are full
    t.equal(gateway.app.store.events.followedQueues, 1, 'still open while the catch-up waits')
    await addEntries(gateway, 5000) // live entries keep coming meanwhile
    t.ok(
      await until(() => gateway.app.store.events.followedQueues === 0, 5000),
      'the stream was ended and its follower stopped',
    )
    t.equal(socketOf(watcher.localPort)?.destroyed, true, 'its connection is dropped')
  },
)

t.test('a catch-up whose client reads nothing for the stall time is cut off', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  await submit(gateway, 'q')
  await addEntries(gateway, 20_000) // about 3 MB of events, over the 1 MiB a watcher may lag
  const feed = gateway.app.store.events
  let abortedAt = 0
  let ended = false
  const stream = new EventStream(feed, {
    queue: 'q',
    job: null,
    after: STREAM_START,
    newest: (await feed.info('q')).lastId,
    gapBefore: null,
    keepAliveMs: 15_000,
    stallMs: 500,
    abort: () => {
      abortedAt = Date.now()
    },
    onEnd: () => {
      ended = true
    },
  })
  const openedAt = Date.now()
  await stream.open() // nobody reads stream.body
  await sleep(250)
  t.equal(abortedAt, 0, 'not cut off while within the stall time')
  t.equal(feed.followedQueues, 1)
  t.ok(await until(() => abortedAt !== 0, 5000), 'cut off once the stall time has passed')
  t.ok(abortedAt - openedAt >= 500, `after the stall time (${abortedAt - openedAt} ms)`)
  t.ok(ended, 'the stream ended')
  t.equal(feed.followedQueues, 0, 'and its follower stopped')
  t.equal(STALL_MS, 30_000, 'the default stall time, as the README says')
})

t.test('the cap trims past the position before the first page is read: a gap event', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  await submit(gateway, 'q')
  await addEntries(gateway, 300)
  const key = 'jobgate:{q}:events'
  const ids = (await gateway.client.xrange(key, '-', '+')).map(([id]) => id)
  // The stream's info is read, then another write's cap trims it, then the first page is read.
  const { events } = gateway.app.store
  const info = events.info.bind(events)
  events.info = async (queue: string) => {
    const read = await info(queue)
    await gateway.client.xtrim(key, 'MAXLEN', 200)
    return read
  }
  const reader = await watch(t, `${gateway.url}/v1/queues/q/events`, {
    'last-event-id': ids[10] ?? '',
  })
  const oldest = (await gateway.client.xrange(key, '-', '+', 'COUNT', 1))[0]?.[0]
  t.ok(oldest !== undefined && ids.indexOf(oldest) > 11, 'entries after the position were trimmed')
  t.ok(await reader.until((r) => r.events.length > 1, 5000))
  t.equal(reader.events[0]?.type, 'gap', 'told of the trimmed entries first')
  t.strictSame(JSON.parse(reader.events[0]?.data ?? ''), { queue: 'q', oldest_id: oldest })
  t.equal(reader.events[1]?.id, oldest, 'then on from the oldest entry left')
  checkEvents(t, gateway, reader)
})

t.test('the cap trims past a slow catch-up: a gap event, then the oldest entry left', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  await submit(gateway, 'q')
  await addEntries(gateway, 60_000)
  const reader = await watch(t, `${gateway.url}/v1/queues/q/events?since=0`)
  // Once the catch-up is under way (its position past the start, which a trim would not
  // skip), the watcher stops reading and the gateway's writes back up.
  t.ok(await reader.until((r) => r.events.length > 0, 5000), 'the catch-up began')
  reader.response.pause()
  await sleep(300)
  // Trim everything the watcher has not read yet, while it is not reading.
  await addEntries(gateway, 10, ['MAXLEN', '10'])
  reader.response.resume()
  // The watcher reads megabytes of catch-up before the gap: a loaded machine takes its time.
  t.ok(await reader.until((r) => r.events.some((e) => e.type === 'gap'), 30_000), 'a gap event')
  const at = reader.events.findIndex((e) => e.type === 'gap')
  const oldest = (await gateway.client.xrange('jobgate:{q}:events', '-', '+', 'COUNT', 1))[0]?.[0]
  t.strictSame(JSON.parse(reader.events[at]?.data ?? ''), { queue: 'q', oldest_id: oldest })
  await reader.until((r) => r.events.length > at + 10, 30_000)
  t.equal(reader.events[at + 1]?.id, oldest, 'then on from the oldest entry left')
  t.equal(reader.events.length, at + 11, 'and the ten entries the stream holds')
  checkEvents(t, gateway, reader)
})

/** `n` entries added by one command, each `XADD` trimming the stream to about `cap`. */
async function addAtOnce(gateway: Gateway, n: number, cap: number): Promise<void> {
  const script = `for i = 1, tonumber(ARGV[1]) do
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'job', 'j-' .. i, 'state', 'queued', 'at', '1')
  end`
  await gateway.client.eval(script, 1, 'jobgate:{q}:events', n, cap)
}

t.test(
  'the cap outruns a live watcher: a gap event, then on from the oldest entry left',
  async (t) => {
    const gateway = await startGateway(t, { listen: true, env: { EVENTS_MAX_LEN: '100' } })
    await submit(gateway, 'q')
    const reader = await watch(t, `${gateway.url}/v1/queues/q/events`)
    await sleep(200) // the follower waits for entries
    // More entries at once than the cap keeps: most are gone before the follower reads.
    await addAtOnce(gateway, 1000, 100)
    const held = await gateway.client.xrange('jobgate:{q}:events', '-', '+')
    t.ok(held.length < 1000, `the stream holds ${held.length} of them`)
    await reader.received(held.length + 1)
    t.equal(reader.events[0]?.type, 'gap')
    t.strictSame(JSON.parse(reader.events[0]?.data ?? ''), { queue: 'q', oldest_id: held[0]?.[0] })
    t.strictSame(
      reader.events.slice(1).map((e) => e.id),
      held.map(([id]) => id),
      'then the entries left, in order',
    )
    checkEvents(t, gateway, reader)

    // Within the cap: every entry, no gap.
    await addAtOnce(gateway, 50, 100)
    await reader.received(held.length + 51)
    await sleep(100)
    t.equal(reader.events.filter((e) => e.type === 'gap').length, 1, 'no second gap')
    t.equal(reader.messages().length, held.length + 50)
  },
)

t.test(
  'a job stream whose final transition fell in a gap: it ends, and a reconnect gets 204',
  async (t) => {
    const gateway = await startGateway(t, { listen: true, env: { EVENTS_MAX_LEN: '100' } })
    const id = await submit(gateway, 'q')
    const reserved = (await (
      await fetch(`${gateway.url}/v1/queues/q/jobs:reserve`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"worker":"w1"}',
      })
    ).json()) as { lease: { token: string } }
    const reader = await watch(t, `${gateway.url}/v1/queues/q/events?job=${id}`)
    await reader.received(2) // queued, active
    await sleep(200) // the follower waits for entries
    // The ack and, in the same transaction, more entries than the cap keeps: the ack's entry is
    // gone before the follower reads.
    const keys = new QueueKeys('jobgate', 'q')
    defineScripts(gateway.client)
    const together = gateway.client.multi()
    queueScript(
      together,
      'ack',
      [keys.job(id), keys.active, keys.events, keys.stats],
      [id, reserved.lease.token, '', 3_600_000, 100, keys.base],
    )
    together.eval(
      `for i = 1, 1000 do
        redis.call('XADD', KEYS[1], 'MAXLEN', '~', '100', '*', 'job', 'j-' .. i, 'state', 'queued', 'at', '1')
      end`,
      1,
      keys.events,
    )
    const [[ackError, ack] = []] = (await together.exec()) ?? []
    t.equal(ackError, null)
    t.equal((ack as string[])[0], 'OK')
    t.equal(await Promise.race([reader.ended.then(() => 'ended'), sleep(3000)]), 'ended')
    t.strictSame(
      reader.events.map((e) => e.type),
      ['message', 'message', 'gap'],
      'its creation and lease, then the gap',
    )
    const again = await fetch(`${gateway.url}/v1/queues/q/events?job=${id}`, {
      headers: { 'last-event-id': reader.events.at(-1)?.id ?? '' },
    })
    t.equal(again.status, 204)
  },
)

t.test('a client that leaves while the stream is being set up leaves nothing behind', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  await submit(gateway, 'q')
  await gateway.redis.pause() // the lookups wait on Redis
  const watcher = await Promise.race([
    stalledWatcher(`${gateway.url}/v1/queues/q/events`),
    sleep(200).then(() => null),
  ])
  t.equal(watcher, null, 'no answer while Redis is stopped')
  // The client goes; then Redis answers the lookups, well within the command timeout.
  gateway.app.server.closeAllConnections()
  await sleep(100)
  gateway.redis.resume()
  await sleep(500)
  const metrics = await fetch(`${gateway.url}/metrics`)
  t.equal(sample(parsePrometheus(await metrics.text()), 'jobgate_event_streams'), 0)
  t.equal(gateway.app.store.events.followedQueues, 0, 'no follower was started')
})

t.test('watching a finished job opens no Redis connection of its own', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  const id = await submit(gateway, 'q')
  await work(gateway, 'q')
  const connections = async () =>
    Number(/total_connections_received:(\d+)/.exec(await gateway.client.info('stats'))?.[1])
  const before = await connections()
  for (let i = 0; i < 3; i++) {
    const replay = await fetch(`${gateway.url}/v1/queues/q/events?job=${id}`)
    t.equal(replay.status, 200)
    t.match(await replay.text(), /"state":"succeeded"/)
  }
  t.equal(await connections(), before, 'nothing to follow: no follower connected')
  t.equal(gateway.app.store.events.followedQueues, 0)
})

t.test('a position Redis never reached (it lost entries): a gap, then all it holds', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  const first = await submit(gateway, 'q')
  const oldest = (await gateway.client.xrange('jobgate:{q}:events', '-', '+', 'COUNT', 1))[0]
  const reader = await watch(t, `${gateway.url}/v1/queues/q/events`, {
    'last-event-id': '99999999999999-0',
  })
  const id = await submit(gateway, 'q')
  await reader.received(3)
  t.equal(reader.events[0]?.type, 'gap')
  t.equal(JSON.parse(reader.events[0]?.data ?? '').oldest_id, oldest?.[0])
  t.strictSame(
    reader.messages<Transition>().map((m) => m.job),
    [first, id],
  )
})

t.test('a stream Redis lost whole: a gap from the start, and a reconnect after it', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  await submit(gateway, 'q')
  const newest = await gateway.client.xrevrange('jobgate:{q}:events', '+', '-', 'COUNT', 1)
  const lastSeen = newest[0]?.[0] ?? ''
  await gateway.client.del('jobgate:{q}:events')
  const reader = await watch(t, `${gateway.url}/v1/queues/q/events`, { 'last-event-id': lastSeen })
  const id = await submit(gateway, 'q')
  await reader.received(2)
  t.equal(reader.events[0]?.type, 'gap')
  t.equal(reader.events[0]?.id, '0', 'an id a reconnect may send')
  t.strictSame(JSON.parse(reader.events[0]?.data ?? ''), { queue: 'q', oldest_id: '0' })
  t.strictSame(
    reader.messages<Transition>().map((m) => m.job),
    [id],
  )
  checkEvents(t, gateway, reader)

  const again = await watch(t, `${gateway.url}/v1/queues/q/events`, { 'last-event-id': '0' })
  await again.received(1)
  t.equal(again.status, 200)
  t.strictSame(
    again.events.map((e) => e.type),
    ['message'],
    'from the start, and no second gap',
  )
})

t.test(
  'the first id line is the start: a client cut off before any event resumes there',
  async (t) => {
    const gateway = await startGateway(t, { listen: true })
    await submit(gateway, 'q')
    const newest = (await gateway.client.xrevrange('jobgate:{q}:events', '+', '-', 'COUNT', 1))[0]
    const reader = await watch(t, `${gateway.url}/v1/queues/q/events`)
    await reader.until((r) => r.lastEventId !== '', 2000)
    t.equal(reader.lastEventId, newest?.[0])
    t.equal(reader.events.length, 0, 'an id line alone is not an event')
    reader.close()
    const missed = await submit(gateway, 'q')
    const again = await watch(t, `${gateway.url}/v1/queues/q/events`, {
      'last-event-id': reader.lastEventId,
    })
    await again.received(1)
    t.equal(again.messages<Transition>()[0]?.job, missed, 'what happened in between comes first')
  },
)

t.test('a finished job far back: the whole catch-up before the answer, then it ends', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  const id = await submit(gateway, 'q')
  await work(gateway, 'q') // queued, active, succeeded
  const [first] = (await gateway.client.xrange('jobgate:{q}:events', '-', '+', 'COUNT', 1))[0] ?? []
  // More than a page of other transitions after the job was queued, before it finished.
  const entries = await gateway.client.xrange('jobgate:{q}:events', '-', '+')
  t.equal(entries.length, 3)
  await gateway.client.del('jobgate:{q}:events')
  await gateway.client.xadd('jobgate:{q}:events', entries[0]?.[0] ?? '', ...(entries[0]?.[1] ?? []))
  await addEntries(gateway, 1200)
  for (const [, fields] of entries.slice(1)) {
    await gateway.client.xadd('jobgate:{q}:events', '*', ...fields)
  }
  const reader = await watch(t, `${gateway.url}/v1/queues/q/events?job=${id}`, {
    'last-event-id': first ?? '',
  })
  t.equal(reader.status, 200, 'not 204: its final state is still to be told')
  await reader.ended
  t.strictSame(
    reader.messages<Transition>().map((m) => m.state),
    ['active', 'succeeded'],
  )
})

t.test(
  'a dropped Redis connection or a Redis restart: the stream stays open, no entry is skipped',
  async (t) => {
    const gateway = await startGateway(t, { listen: true })
    await submit(gateway, 'q')
    const reader = await watch(t, `${gateway.url}/v1/queues/q/events`)
    // Every gateway connection dropped, and an entry added before the follower is back.
    await gateway.client.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
    const whileAway = await addEntry(gateway.client, 'j-1')
    await reader.received(1)
    t.equal(reader.events[0]?.id, whileAway, 'the follower read on from where it stood')

    await gateway.redis.kill()
    await sleep(300)
    await gateway.redis.spawn()
    const client = gateway.redis.client()
    t.teardown(() => client.disconnect())
    const afterRestart = await addEntry(client, 'j-2')
    await reader.received(2, 10_000)
    t.equal(reader.events[1]?.id, afterRestart)
    t.notOk(reader.done)
  },
)

t.test(
  'a follower whose connection went silent (a vanished host) reconnects and reads on',
  async (t) => {
    const gateway = await startGatewayBehindProxy(t, { listen: true })
    await submit(gateway, 'q')
    const reader = await watch(t, `${gateway.url}/v1/queues/q/events`)
    await sleep(300)
    gateway.proxy.freeze() // the follower's XREAD BLOCK now waits on a connection that carries nothing
    const entry = await addEntry(gateway.client, 'j')
    await reader.received(1, 12_000)
    t.equal(
      reader.events[0]?.id,
      entry,
      'delivered over a new connection, after the block timed out',
    )
  },
)

t.test(
  'a follower of a busy queue whose connection went silent reconnects and reads on',
  async (t) => {
    const gateway = await startGatewayBehindProxy(t, { listen: true })
    await submit(gateway, 'q')
    const reader = await watch(t, `${gateway.url}/v1/queues/q/events`)
    // Entries every few ms: the follower reads on and on and never blocks on the stream.
    let adding = true
    const added: string[] = []
    const adder = (async () => {
      for (let i = 0; adding; i++) {
        added.push((await addEntry(gateway.client, `j-${i}`)) ?? '')
        await sleep(5)
      }
    })()
    t.teardown(async () => {
      adding = false
      await adder
    })
    await until(() => reader.events.length > 20, 5000)
    gateway.proxy.freeze() // the follower's reads now go to a connection that carries nothing
    await sleep(200)
    const mark = added.at(-1)
    const delivered = await until(() => reader.events.some((event) => event.id === mark), 15_000)
    t.ok(delivered, 'an entry added after the freeze arrived over a new connection')
  },
)

t.test('a stream still being set up when a shutdown starts gets 503, not a stream', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  await submit(gateway, 'q')
  await gateway.redis.pause() // the lookups wait on Redis
  const answer = EventReader.open(`${gateway.url}/v1/queues/q/events`)
  await sleep(200)
  const closed = gateway.app.close()
  await sleep(100)
  gateway.redis.resume()
  const reader = await answer
  t.equal(reader.status, 503)
  t.equal(reader.header('content-type'), 'application/problem+json; charset=utf-8')
  await reader.ended
  await closed
  t.equal(gateway.app.store.events.followedQueues, 0)
})

t.test('shutdown ends every open stream', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  await submit(gateway, 'q')
  const readers = await Promise.all(
    [1, 2, 3].map(() => watch(t, `${gateway.url}/v1/queues/q/events`)),
  )
  const started = Date.now()
  await gateway.app.close()
  await Promise.all(readers.map((r) => r.ended))
  t.ok(Date.now() - started < 2000, 'the gateway closed without waiting on its watchers')
  t.ok(readers.every((r) => r.done))
})

t.test('shutdown drops a watcher that stopped reading, after a grace', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  await submit(gateway, 'q')
  // Enough to fill the socket's buffers: the end of the stream can never be written.
  const pipeline = gateway.client.pipeline()
  for (let i = 0; i < 100_000; i++) {
    pipeline.xadd('jobgate:{q}:events', '*', 'job', `j-${i}`, 'state', 'queued', 'at', '1')
  }
  await pipeline.exec()
  const socketOf = serverSockets(gateway.app.server)
  const watcher = await stalledWatcher(`${gateway.url}/v1/queues/q/events?since=0`)
  t.teardown(() => watcher.destroy())
  t.equal(watcher.status, 200)
  await sleep(300)
  const closed = gateway.app.close().then(() => 'closed')
  t.equal(
    await Promise.race([closed, sleep(5000).then(() => 'still open')]),
    'closed',
    'the shutdown does not wait for the client (SHUTDOWN_TIMEOUT would end it with exit 1)',
  )
  t.equal(socketOf(watcher.localPort)?.destroyed, true, 'its connection was dropped')
})

t.test('shutdown closes connections that have sent no request', async (t) => {
  const gateway = await startGateway(t, { listen: true })
  const { port } = new URL(gateway.url)
  const unused = connect(Number(port), '127.0.0.1')
  unused.on('error', () => {})
  t.teardown(() => unused.destroy())
  const dropped = new Promise<string>((resolve) => unused.once('close', () => resolve('dropped')))
  await new Promise((resolve) => unused.once('connect', resolve))
  await sleep(100)
  const closed = gateway.app.close().then(() => 'closed')
  t.equal(await Promise.race([closed, sleep(5000).then(() => 'still open')]), 'closed')
  t.equal(await dropped, 'dropped')
})

t.test(
  'a finished job whose transitions were all trimmed: a gap, then 204 on reconnect',
  async (t) => {
    const gateway = await startGateway(t, { listen: true, env: { EVENTS_MAX_LEN: '100' } })
    const id = await submit(gateway, 'q')
    await work(gateway, 'q')
    for (let i = 0; i < 300; i++) await submit(gateway, 'q')
    const first = await fetch(`${gateway.url}/v1/queues/q/events?job=${id}`)
    t.equal(first.status, 200)
    const body = await first.text()
    const gapId = /id: (\S+)\nevent: gap/.exec(body)?.[1]
    t.ok(gapId, 'the gap carries an id')
    const again = await fetch(`${gateway.url}/v1/queues/q/events?job=${id}`, {
      headers: { 'last-event-id': gapId ?? '' },
    })
    t.equal(again.status, 204, 'nothing left to tell: an EventSource stops reconnecting')
  },
)

t.test(
  'EVENT_STREAMS_PER_CLIENT: a client past its share gets 429, others still get streams, a closed one frees a slot',
  async (t) => {
    const greedy = newApiKey('greedy', ['read', 'produce'])
    const other = newApiKey('other', ['read'])
    const gateway = await startGateway(t, {
      listen: true,
      env: { API_KEYS: `${greedy.entry},${other.entry}`, EVENT_STREAMS_PER_CLIENT: '2' },
    })
    const url = `${gateway.url}/v1/queues/q/events`
    const submitted = await fetch(`${gateway.url}/v1/queues/q/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${greedy.key}`, 'content-type': 'application/json' },
      body: '{"type":"t"}',
    })
    t.equal(submitted.status, 202)
    const as = (key: string) => ({ authorization: `Bearer ${key}` })
    const first = await watch(t, url, as(greedy.key))
    const second = await watch(t, url, as(greedy.key))
    t.same([first.status, second.status], [200, 200])
    const refused = await fetch(url, { headers: as(greedy.key) })
    t.equal(refused.status, 429)
    t.equal(refused.headers.get('retry-after'), '5')
    t.match(await refused.json(), {
      code: 'TOO_MANY_CLIENT_EVENT_STREAMS',
      detail: /holds 2 event streams/,
    })
    const others = await watch(t, url, as(other.key))
    t.equal(others.status, 200, 'another client is not held back')
    const missing = await fetch(`${gateway.url}/v1/queues/nope/events`, { headers: as(other.key) })
    t.equal(missing.status, 404)
    const stillOne = await watch(t, url, as(other.key))
    t.equal(stillOne.status, 200, 'a refused request gave its slot back')
    const third = await fetch(url, { headers: as(other.key) })
    t.equal(third.status, 429)
    await third.body?.cancel()
    first.close()
    let freed = false
    for (const deadline = Date.now() + 3000; !freed && Date.now() < deadline; ) {
      const again = await fetch(url, { headers: as(greedy.key) })
      freed = again.status === 200
      await again.body?.cancel()
      if (!freed) await new Promise((resolve) => setTimeout(resolve, 50))
    }
    t.ok(freed, 'a closed stream gives its slot back')
  },
)
