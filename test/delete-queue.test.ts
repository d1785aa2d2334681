import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { QueueRegistry } from '../src/queue/queue-registry.js'
import { EventReader } from './helpers/event-source.js'
import { dataKeys, startGateway } from './helpers/gateway.js'
import { sleep } from './helpers/load.js'
import { parsePrometheus, sample } from './helpers/prometheus.js'

/** DELETE /v1/queues/{queue}: an empty queue leaves the registry with its counters and events. */

function submit(app: FastifyInstance, queue: string, body: object = { type: 't' }, key?: string) {
  return app.inject({
    method: 'POST',
    url: `/v1/queues/${queue}/jobs`,
    payload: body,
    ...(key ? { headers: { 'idempotency-key': key } } : {}),
  })
}

async function submitted(app: FastifyInstance, queue: string, body?: object): Promise<string> {
  const res = await submit(app, queue, body)
  if (res.statusCode !== 202) throw new Error(`submit: ${res.statusCode} ${res.body}`)
  return res.json().id
}

async function lease(app: FastifyInstance, queue: string): Promise<{ id: string; token: string }> {
  const res = await app.inject({
    method: 'POST',
    url: `/v1/queues/${queue}/jobs:reserve`,
    payload: { worker: 'w' },
  })
  if (res.statusCode !== 200) throw new Error(`reserve: ${res.statusCode} ${res.body}`)
  return { id: res.json().job.id, token: res.json().lease.token }
}

async function finish(app: FastifyInstance, queue: string, action: 'ack' | 'fail') {
  const { id, token } = await lease(app, queue)
  const res = await app.inject({
    method: 'POST',
    url: `/v1/queues/${queue}/jobs/${id}:${action}`,
    payload:
      action === 'ack' ? { lease_token: token } : { lease_token: token, error: { message: 'no' } },
  })
  if (res.statusCode !== 200) throw new Error(`${action}: ${res.statusCode} ${res.body}`)
  return id
}

const remove = (app: FastifyInstance, queue: string) =>
  app.inject({ method: 'DELETE', url: `/v1/queues/${queue}` })

/** The gateway's queue registry (its stores' own), for the tests that step in between its calls. */
function registryOf(app: FastifyInstance): QueueRegistry {
  return (app.store.jobs as unknown as { registry: QueueRegistry }).registry
}

async function listed(app: FastifyInstance): Promise<string[]> {
  const res = await app.inject({ method: 'GET', url: '/v1/queues' })
  return res.json().queues.map((queue: { name: string }) => queue.name)
}

t.test('an empty queue is deleted: its keys go, its finished jobs stay readable', async (t) => {
  const { app, client } = await startGateway(t)
  const first = await submit(app, 'q', { type: 't' }, 'order-1')
  const id = first.json().id
  t.equal(await finish(app, 'q', 'ack'), id)
  await submitted(app, 'other')
  t.equal((await app.inject({ method: 'POST', url: '/v1/queues/q:pause' })).statusCode, 200)
  t.equal(await client.exists('jobgate:{q}:stats', 'jobgate:{q}:events', 'jobgate:{q}:paused'), 3)

  const res = await remove(app, 'q')
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  t.ok(res.headers['x-request-id'])

  t.strictSame(await client.smembers('jobgate:queues'), ['other'])
  t.strictSame(
    (await dataKeys(client)).filter((key) => key.startsWith('jobgate:{q}:')).sort(),
    [`jobgate:{q}:events`, `jobgate:{q}:idem:anonymous:order-1`, `jobgate:{q}:job:${id}`].sort(),
    'only the finished job and its idempotency record are left, to expire, and the stream emptied',
  )
  t.equal(await client.xlen('jobgate:{q}:events'), 0)
  t.strictSame(await listed(app), ['other'])
  const gone = await app.inject({ method: 'GET', url: '/v1/queues/q' })
  t.equal(gone.statusCode, 404)
  t.equal(gone.json().code, 'QUEUE_NOT_FOUND')
  const metrics = parsePrometheus((await app.inject({ method: 'GET', url: '/metrics' })).body)
  t.strictSame(
    [...metrics.keys()].filter((key) => key.includes('queue="q"')),
    [],
    'no series of the deleted queue, its submission counters included',
  )
  t.equal(sample(metrics, 'jobgate_jobs_enqueued_total', { queue: 'other' }), 1)
  t.equal(sample(metrics, 'jobgate_queue_jobs', { queue: 'other', state: 'queued' }), 1)
  t.equal(sample(metrics, 'jobgate_queues'), 1)

  const job = await app.inject({ method: 'GET', url: `/v1/queues/q/jobs/${id}` })
  t.equal(job.statusCode, 200)
  t.equal(job.json().state, 'succeeded')
  const again = await remove(app, 'q')
  t.equal(again.statusCode, 404)
  t.equal(again.json().code, 'QUEUE_NOT_FOUND')

  const replay = await submit(app, 'q', { type: 't' }, 'order-1')
  t.equal(replay.statusCode, 202)
  t.equal(replay.headers['idempotent-replayed'], 'true')
  t.equal(replay.json().id, id, 'a replay within the retention still finds its job')

  // Past the second in which this gateway remembers q as registered: a replay creates nothing,
  // so it does not list the deleted queue again.
  await sleep(1100)
  const later = await submit(app, 'q', { type: 't' }, 'order-1')
  t.equal(later.headers['idempotent-replayed'], 'true')
  t.strictSame(await listed(app), ['other'])
  t.strictSame(await client.smembers('jobgate:queues'), ['other'])
})

t.test('the next job starts the queue afresh and lists it at once', async (t) => {
  const { app, client } = await startGateway(t)
  await submitted(app, 'q')
  await finish(app, 'q', 'ack')
  t.equal((await remove(app, 'q')).statusCode, 204)

  // Within a second of this gateway's last registration of q: the first job registers anyway.
  await submitted(app, 'q')
  t.strictSame(await listed(app), ['q'])
  const queue = (await app.inject({ method: 'GET', url: '/v1/queues/q' })).json()
  t.match(queue, {
    name: 'q',
    counts: { queued: 1, scheduled: 0, active: 0, dead: 0 },
    paused: false,
    totals: { enqueued: 1, succeeded: 0 },
  })
  t.equal(await client.hget('jobgate:{q}:stats', 'enqueued'), '1')
})

t.test('a queue holding jobs is refused with its counts, and nothing changes', async (t) => {
  const { app, client } = await startGateway(t)
  await submitted(app, 'q')
  await submitted(app, 'q')
  await submitted(app, 'q')
  await finish(app, 'q', 'fail')
  await lease(app, 'q')
  await submitted(app, 'q', { type: 't', delay_ms: 60_000 })
  const before = await dataKeys(client)
  const stream = await client.xlen('jobgate:{q}:events')

  const res = await remove(app, 'q')
  t.equal(res.statusCode, 409)
  t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.match(res.json(), {
    code: 'QUEUE_NOT_EMPTY',
    status: 409,
    counts: { queued: 1, scheduled: 1, active: 1, dead: 1 },
  })
  t.match(res.json().detail, /1 queued, 1 scheduled, 1 active, 1 dead/)
  t.strictSame(await dataKeys(client), before, 'no key written or deleted')
  t.equal(await client.xlen('jobgate:{q}:events'), stream)
  t.strictSame(await listed(app), ['q'])

  for (const state of ['queued', 'scheduled']) {
    const cleared = await app.inject({ method: 'DELETE', url: `/v1/queues/q/jobs?state=${state}` })
    t.equal(cleared.json().canceled, 1)
  }
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/queues/q/dead' })).json().purged, 1)
  t.match((await remove(app, 'q')).json(), { code: 'QUEUE_NOT_EMPTY', counts: { active: 1 } })
})

t.test('bad names and unknown queues are refused without writing', async (t) => {
  const { app, client } = await startGateway(t)
  await submitted(app, 'q')
  const before = await dataKeys(client)
  for (const [queue, status, code] of [
    ['typo', 404, 'QUEUE_NOT_FOUND'],
    ['bad%20name', 400, 'VALIDATION_FAILED'],
    ['q'.repeat(65), 400, 'VALIDATION_FAILED'],
  ] as const) {
    const res = await remove(app, queue)
    t.equal(res.statusCode, status, queue)
    t.equal(res.json().code, code, queue)
  }
  const body = await app.inject({
    method: 'DELETE',
    url: '/v1/queues/q',
    headers: { 'content-type': 'text/plain' },
    payload: 'x',
  })
  t.equal(body.statusCode, 415)
  t.strictSame(await dataKeys(client), before)
})

t.test('a job submitted while the delete runs keeps the queue listed', async (t) => {
  const { app, client, redis } = await startGateway(t)
  const other = await startGateway(t, { redis })
  await submitted(other.app, 'q') // the other gateway has registered q within the last second
  await finish(app, 'q', 'ack')

  // The job lands after the delete script and before the name leaves the registry.
  const redisClient = app.store.client
  const srem = redisClient.srem.bind(redisClient)
  let late = ''
  redisClient.srem = (async (...args: Parameters<typeof srem>) => {
    late = await submitted(other.app, 'q')
    return srem(...args)
  }) as typeof srem
  t.teardown(() => {
    redisClient.srem = srem
  })

  t.equal((await remove(app, 'q')).statusCode, 204)
  t.ok(late)
  t.strictSame(await client.smembers('jobgate:queues'), ['q'])
  t.match((await app.inject({ method: 'GET', url: '/v1/queues/q' })).json(), {
    counts: { queued: 1 },
    totals: { enqueued: 1 },
  })
})

t.test('MAX_QUEUES: a job for a new queue is refused until one is deleted', async (t) => {
  const { app, client } = await startGateway(t, { env: { MAX_QUEUES: '2' } })
  await submitted(app, 'a')
  await submitted(app, 'b')
  const before = await dataKeys(client)

  const refused = await submit(app, 'c', { type: 't' }, 'k-1')
  t.equal(refused.statusCode, 409)
  t.equal(refused.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.match(refused.json(), { code: 'TOO_MANY_QUEUES', status: 409 })
  t.match(
    refused.json().detail,
    /would be new, but the gateway holds its maximum of queues \(MAX_QUEUES\)/,
  )
  const batch = await app.inject({
    method: 'POST',
    url: '/v1/queues/c/jobs:batch',
    payload: { jobs: [{ type: 't' }, { type: 't', idempotency_key: 'k-2' }] },
  })
  t.equal(batch.statusCode, 200)
  t.match(batch.json(), { accepted: 0, replayed: 0, rejected: 2 })
  t.strictSame(
    batch
      .json()
      .results.map((item: { status: number; problem: { code: string } }) => [
        item.status,
        item.problem.code,
      ]),
    [
      [409, 'TOO_MANY_QUEUES'],
      [409, 'TOO_MANY_QUEUES'],
    ],
  )
  t.strictSame(await dataKeys(client), before, 'nothing written for the new queue')

  t.equal((await submit(app, 'a')).statusCode, 202, 'existing queues take jobs as before')
  await finish(app, 'b', 'ack')
  t.equal((await remove(app, 'b')).statusCode, 204)
  t.equal((await submit(app, 'c', { type: 't' }, 'k-1')).statusCode, 202, 'room again')
  t.strictSame(await listed(app), ['a', 'c'])
  t.equal((await submit(app, 'd')).statusCode, 409)

  const metrics = parsePrometheus((await app.inject({ method: 'GET', url: '/metrics' })).body)
  t.equal(sample(metrics, 'jobgate_jobs_rejected_total', { code: 'TOO_MANY_QUEUES' }), 4)
})

t.test('MAX_QUEUES holds across gateways sharing Redis', async (t) => {
  const { app, redis } = await startGateway(t, { env: { MAX_QUEUES: '1' } })
  const other = await startGateway(t, { redis, env: { MAX_QUEUES: '1' } })
  await submitted(app, 'a')
  t.equal((await submit(other.app, 'a')).statusCode, 202, 'the other gateway finds a registered')
  t.equal((await submit(other.app, 'b')).statusCode, 409)
  t.equal((await submit(app, 'b')).statusCode, 409)
})

t.test('a replay is answered at MAX_QUEUES; a refusal leaves no name behind', async (t) => {
  const { app, client } = await startGateway(t, { env: { MAX_QUEUES: '1' } })
  const first = await submit(app, 'q', { type: 't' }, 'k1')
  await finish(app, 'q', 'ack')
  t.equal((await remove(app, 'q')).statusCode, 204)
  await submitted(app, 'other')

  const replay = await submit(app, 'q', { type: 't' }, 'k1')
  t.equal(replay.statusCode, 202, 'the job exists: replayed, not refused')
  t.equal(replay.headers['idempotent-replayed'], 'true')
  t.equal(replay.json().id, first.json().id)
  t.equal((await submit(app, 'q', { type: 't' }, 'k2')).statusCode, 409, 'a new job is refused')
  t.strictSame(await client.smembers('jobgate:queues'), ['other'])

  // A queue whose registry entry was lost still takes jobs, and is listed again.
  await client.srem('jobgate:queues', 'other')
  await submitted(app, 'q2') // the one place goes to a new queue
  await sleep(1100) // past the second in which this gateway remembers other as registered
  t.equal((await submit(app, 'other')).statusCode, 202, 'an existing queue is never refused')
  t.strictSame((await client.smembers('jobgate:queues')).sort(), ['other', 'q2'])
})

t.test('MAX_QUEUES holds against submissions racing for new queues', async (t) => {
  const { app, client } = await startGateway(t, { env: { MAX_QUEUES: '2' } })
  const answers = await Promise.all(
    Array.from({ length: 50 }, (_, i) => submit(app, `n${i}`, { type: 't' })),
  )
  const statuses = answers.map((res) => res.statusCode)
  t.equal(statuses.filter((status) => status === 202).length, 2)
  t.equal(statuses.filter((status) => status === 409).length, 48)
  t.equal(await client.scard('jobgate:queues'), 2)
  const accepted = answers.filter((res) => res.statusCode === 202).map((res) => res.json().queue)
  t.strictSame((await client.smembers('jobgate:queues')).sort(), accepted.sort())
})

t.test('a pause that finds the queue deleted sets no flag', async (t) => {
  const { app, client } = await startGateway(t)
  await submitted(app, 'q')
  await finish(app, 'q', 'ack')
  t.equal((await remove(app, 'q')).statusCode, 204)
  // As a pause whose queue check ran just before the delete: the script itself refuses.
  t.equal(await app.store.queues.setPaused('q', true), false)
  t.equal(await client.exists('jobgate:{q}:paused'), 0)
  await submitted(app, 'q')
  t.match((await app.inject({ method: 'GET', url: '/v1/queues/q' })).json(), { paused: false })
})

t.test(
  'the event stream across a delete: ids go on growing, a resumed watcher gets a gap',
  async (t) => {
    const { app, client, url } = await startGateway(t, { listen: true })
    await submitted(app, 'q')
    await finish(app, 'q', 'ack')
    const before = (await client.xrange('jobgate:{q}:events', '-', '+')).map(([id]) => id)
    t.equal(before.length, 3, 'queued, active, succeeded')
    t.equal((await remove(app, 'q')).statusCode, 204)
    const id = await submitted(app, 'q')
    const after = await client.xrange('jobgate:{q}:events', '-', '+')
    t.equal(after.length, 1)
    const [newest] = after[0] ?? []
    const [ms, seq] = (newest ?? '').split('-').map(Number)
    const [lastMs, lastSeq] = (before.at(-1) ?? '').split('-').map(Number)
    t.ok(
      (ms ?? 0) > (lastMs ?? 0) || (ms === lastMs && (seq ?? 0) > (lastSeq ?? 0)),
      'the new entry comes after every old one',
    )

    const reader = await EventReader.open(`${url}/v1/queues/q/events`, {
      'last-event-id': before[0] ?? '',
    })
    t.teardown(() => reader.close())
    const events = await reader.received(2)
    t.equal(events[0]?.type, 'gap', 'the entries the delete emptied are told of')
    t.equal(events[1]?.type, 'message')
    t.match(JSON.parse(events[1]?.data ?? ''), { job: id, state: 'queued' })
  },
)

t.test(
  'a dead record that outlived its dead-set entry, redriven after a delete, lists the queue again',
  async (t) => {
    const { app, client } = await startGateway(t)
    await submitted(app, 'q')
    const id = await finish(app, 'q', 'fail')
    // As a DEAD_RETENTION shortened since the job died: counts and the delete prune the entry.
    await client.zrem('jobgate:{q}:dead', id)
    t.equal((await remove(app, 'q')).statusCode, 204)
    t.strictSame(await listed(app), [])

    const redriven = await app.inject({ method: 'POST', url: `/v1/queues/q/dead/${id}:redrive` })
    t.equal(redriven.statusCode, 200)
    t.equal(redriven.json().state, 'queued')
    t.strictSame(await listed(app), ['q'])
    t.match((await app.inject({ method: 'GET', url: '/v1/queues/q' })).json(), {
      counts: { queued: 1 },
    })
  },
)

t.test("a queue deleted through another gateway leaves this one's metrics too", async (t) => {
  const a = await startGateway(t)
  const b = await startGateway(t, { redis: a.redis })
  await submitted(a.app, 'gone')
  await finish(a.app, 'gone', 'ack')
  await submitted(a.app, 'kept')
  const scrape = async () =>
    parsePrometheus((await a.app.inject({ method: 'GET', url: '/metrics' })).body)
  t.equal(sample(await scrape(), 'jobgate_jobs_enqueued_total', { queue: 'gone' }), 1)
  t.equal((await remove(b.app, 'gone')).statusCode, 204)
  const metrics = await scrape()
  t.strictSame(
    [...metrics.keys()].filter((key) => key.includes('queue="gone"')),
    [],
  )
  t.equal(sample(metrics, 'jobgate_jobs_enqueued_total', { queue: 'kept' }), 1)
})

t.test(
  'a dead-set entry whose record is gone is no job: the delete drops it and goes ahead',
  async (t) => {
    const { app, client } = await startGateway(t)
    await submitted(app, 'q')
    const id = await finish(app, 'q', 'fail')
    // As a record that expired before its entry (DEAD_RETENTION lengthened since), or was evicted.
    await client.del(`jobgate:{q}:job:${id}`)
    t.equal((await remove(app, 'q')).statusCode, 204)
    t.equal(await client.exists('jobgate:{q}:dead'), 0, 'the dead set is gone with the queue')
    t.strictSame(await listed(app), [])
  },
)

t.test(
  'dead-set entries past their retention: never counted or listed, pruned 1,000 per call',
  async (t) => {
    const { app, client } = await startGateway(t, { env: { DEAD_RETENTION: '1d' } })
    await submitted(app, 'q')
    const id = await finish(app, 'q', 'fail')
    // 2,500 entries that died two days ago, as after a burst of deaths or a shorter retention.
    const old = Date.now() - 2 * 86_400_000
    const entries = Array.from({ length: 2500 }, (_, i) => [old + i, `old-${i}`]).flat()
    await client.zadd('jobgate:{q}:dead', ...entries)
    const queue = await app.inject({ method: 'GET', url: '/v1/queues/q' })
    t.match(queue.json(), { counts: { dead: 1 } }, 'only the job within its retention')
    t.equal(await client.zcard('jobgate:{q}:dead'), 1501, 'one call pruned 1,000')
    const page = await app.inject({ method: 'GET', url: '/v1/queues/q/dead?limit=500' })
    t.match(page.json(), { total: 1 })
    t.strictSame(
      page.json().jobs.map((job: { id: string }) => job.id),
      [id],
    )
    t.equal(await client.zcard('jobgate:{q}:dead'), 501)
    // Not empty: the job within its retention. Pruning goes on.
    t.equal((await remove(app, 'q')).statusCode, 409)
    t.equal(await client.zcard('jobgate:{q}:dead'), 1)
  },
)

t.test(
  'the same new queue from two gateways at MAX_QUEUES: both refused, no name left',
  async (t) => {
    const { app, client, redis } = await startGateway(t, { env: { MAX_QUEUES: '1' } })
    const other = await startGateway(t, { redis, env: { MAX_QUEUES: '1' } })
    await submitted(app, 'a')
    const answers = await Promise.all(
      [app, other.app, app, other.app].map((gateway) => submit(gateway, 'c', { type: 't' }, 'k')),
    )
    t.strictSame(
      answers.map((res) => res.statusCode),
      [409, 409, 409, 409],
    )
    t.strictSame(await client.smembers('jobgate:queues'), ['a'])
    t.strictSame(await client.keys('jobgate:{c}:*'), [])
  },
)

t.test('a delete between a submission and its first job leaves the queue listed', async (t) => {
  const { app, client, redis } = await startGateway(t)
  const other = await startGateway(t, { redis })
  // The submission registers `fresh`; before its enqueue script runs, another gateway deletes
  // the queue it finds registered and empty.
  const registry = registryOf(app)
  const admit = registry.admit.bind(registry)
  registry.admit = async (queue: string) => {
    const admission = await admit(queue)
    t.equal((await remove(other.app, queue)).statusCode, 204, 'deleted while empty')
    return admission
  }
  t.teardown(() => {
    registry.admit = admit
  })
  const id = await submitted(app, 'fresh')
  t.strictSame(await client.smembers('jobgate:queues'), ['fresh'])
  t.match((await app.inject({ method: 'GET', url: '/v1/queues/fresh' })).json(), {
    counts: { queued: 1 },
  })
  t.equal((await app.inject({ method: 'GET', url: `/v1/queues/fresh/jobs/${id}` })).statusCode, 200)
})

t.test(
  'purging a dead record after its queue was deleted does not bring the queue back',
  async (t) => {
    const { app, client } = await startGateway(t)
    await submitted(app, 'q')
    const id = await finish(app, 'q', 'fail')
    await client.zrem('jobgate:{q}:dead', id) // as a DEAD_RETENTION shortened since it died
    t.equal((await remove(app, 'q')).statusCode, 204)
    const purged = await app.inject({ method: 'DELETE', url: `/v1/queues/q/dead/${id}` })
    t.equal(purged.statusCode, 204)
    t.equal(await client.exists('jobgate:{q}:stats', `jobgate:{q}:job:${id}`), 0)
    t.strictSame(await listed(app), [])
  },
)

t.test(
  'a delete after a first job or a redrive, before its name is added: no name without a queue',
  async (t) => {
    const { app, client, redis } = await startGateway(t)
    const other = await startGateway(t, { redis })
    // The job runs and its queue is deleted through another gateway before this one adds the
    // queue's name, the step after the enqueue (a first job) or the redrive.
    const registry = registryOf(app)
    const add = registry.add.bind(registry)
    t.teardown(() => {
      registry.add = add
    })
    const deletedFirst = async (queue: string) => {
      await finish(other.app, queue, 'ack')
      t.equal((await remove(other.app, queue)).statusCode, 204, 'deleted once the job ran')
      await add(queue)
    }

    registry.add = deletedFirst
    await submitted(app, 'first')
    t.strictSame(await client.smembers('jobgate:queues'), [], 'the first job: no name')
    t.equal(await client.exists('jobgate:{first}:stats'), 0)

    registry.add = add
    await submitted(app, 'again')
    const id = await finish(app, 'again', 'fail')
    registry.add = deletedFirst
    const redriven = await app.inject({
      method: 'POST',
      url: `/v1/queues/again/dead/${id}:redrive`,
    })
    t.equal(redriven.statusCode, 200)
    t.strictSame(await client.smembers('jobgate:queues'), [], 'the redrive: no name')
    t.equal((await app.inject({ method: 'GET', url: '/v1/queues/again' })).statusCode, 404)

    // Still added when its queue is there.
    registry.add = add
    await submitted(app, 'kept')
    t.strictSame(await client.smembers('jobgate:queues'), ['kept'])
  },
)

t.test('a queue whose name the registry lost is found by its jobs, and listed again', async (t) => {
  const { app, client } = await startGateway(t)
  await submitted(app, 'kept')
  // A registry's shard that failed over to a replica behind, or came back empty.
  await client.srem('jobgate:queues', 'kept')
  const names = async () =>
    (await app.inject({ method: 'GET', url: '/v1/queues' }))
      .json()
      .queues.map((queue: { name: string }) => queue.name)
  t.strictSame(await names(), [], 'not listed while its name is lost')

  const found = await app.inject({ method: 'GET', url: '/v1/queues/kept' })
  t.equal(found.statusCode, 200, 'a queue holding a job is not answered 404')
  t.equal(found.json().counts.queued, 1)
  t.strictSame(await client.smembers('jobgate:queues'), ['kept'], 'its name registered again')
  t.strictSame(await names(), ['kept'])

  const before = await dataKeys(client)
  const unknown = await app.inject({ method: 'GET', url: '/v1/queues/never' })
  t.equal(unknown.statusCode, 404)
  t.strictSame(await dataKeys(client), before, 'an unknown queue writes nothing')
  t.strictSame(await client.smembers('jobgate:queues'), ['kept'])
})
