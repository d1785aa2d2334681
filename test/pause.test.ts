import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { dataKeys, startGateway } from './helpers/gateway.js'
import { sleep } from './helpers/load.js'
import { PhpWorker } from './helpers/php-worker.js'
import { parsePrometheus, sample } from './helpers/prometheus.js'

/** POST /v1/queues/{queue}:pause and :resume: workers lease nothing from a paused queue. */

async function submit(app: FastifyInstance, body: object = { type: 't' }): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/v1/queues/q/jobs', payload: body })
  if (res.statusCode !== 202) throw new Error(`submit: ${res.statusCode} ${res.body}`)
  return res.json().id
}

function reserve(app: FastifyInstance, body: object = { worker: 'w' }) {
  return app.inject({ method: 'POST', url: '/v1/queues/q/jobs:reserve', payload: body })
}

const pause = (app: FastifyInstance, queue = 'q') =>
  app.inject({ method: 'POST', url: `/v1/queues/${queue}:pause` })
const resume = (app: FastifyInstance, queue = 'q') =>
  app.inject({ method: 'POST', url: `/v1/queues/${queue}:resume` })

t.test(
  'pause and resume: the flag in Redis, the queue view, repeats, unknown queues',
  async (t) => {
    const { app, client } = await startGateway(t)
    await submit(app)

    const paused = await pause(app)
    t.equal(paused.statusCode, 200)
    t.match(paused.json(), { name: 'q', paused: true, counts: { queued: 1 } })
    const pausedAt = paused.json().paused_at
    t.equal(await client.get('jobgate:{q}:paused'), String(Date.parse(pausedAt)))
    await sleep(5)
    t.equal((await pause(app)).json().paused_at, pausedAt, 'pausing again keeps the first time')
    t.match((await app.inject({ method: 'GET', url: '/v1/queues/q' })).json(), {
      paused: true,
      paused_at: pausedAt,
    })
    const metrics = parsePrometheus((await app.inject({ method: 'GET', url: '/metrics' })).body)
    t.equal(sample(metrics, 'jobgate_queue_paused', { queue: 'q' }), 1)

    const resumed = await resume(app)
    t.equal(resumed.statusCode, 200)
    t.match(resumed.json(), { paused: false, paused_at: null })
    t.equal(await client.exists('jobgate:{q}:paused'), 0)
    t.equal((await resume(app)).statusCode, 200, 'resuming a running queue changes nothing')
    const after = parsePrometheus((await app.inject({ method: 'GET', url: '/metrics' })).body)
    t.equal(sample(after, 'jobgate_queue_paused', { queue: 'q' }), 0)

    const before = await dataKeys(client)
    const unknown = await pause(app, 'typo')
    t.equal(unknown.statusCode, 404)
    t.equal(unknown.json().code, 'QUEUE_NOT_FOUND')
    const bad = await pause(app, 'bad%20name')
    t.equal(bad.statusCode, 400)
    t.equal(bad.json().code, 'VALIDATION_FAILED')
    const long = await pause(app, 'q'.repeat(65))
    t.equal(long.statusCode, 400)
    t.equal(long.json().code, 'VALIDATION_FAILED')
    const other = await app.inject({ method: 'POST', url: '/v1/queues/q:stop' })
    t.equal(other.statusCode, 404)
    t.equal(other.json().code, 'ROUTE_NOT_FOUND')
    const get = await app.inject({ method: 'GET', url: '/v1/queues/q:pause' })
    t.equal(get.statusCode, 405)
    t.equal(get.headers.allow, 'POST')
    t.strictSame(await dataKeys(client), before, 'none of them wrote a key')
  },
)

t.test(
  'a paused queue leases nothing; its housekeeping goes on; resume wakes a waiting reserve',
  async (t) => {
    const { app, client } = await startGateway(t)
    const running = await submit(app)
    const leased = (await reserve(app, { worker: 'w', lease_ms: 1000 })).json()
    t.equal(leased.job.id, running)
    const waiting = await submit(app)
    await pause(app)

    t.equal((await reserve(app)).statusCode, 204, 'nothing leased while paused')
    t.equal(await client.hget(`jobgate:{q}:job:${waiting}`, 'state'), 'queued')
    const ack = await app.inject({
      method: 'POST',
      url: `/v1/queues/q/jobs/${running}:ack`,
      payload: { lease_token: leased.lease.token },
    })
    t.equal(ack.statusCode, 200, 'a job already running is acked as usual')

    const again = await submit(app)
    const second = (await app.inject({ method: 'POST', url: '/v1/queues/q:resume' })).statusCode
    t.equal(second, 200)
    const lease = (await reserve(app, { worker: 'w', lease_ms: 1000 })).json()
    t.equal(lease.job.id, waiting)
    await pause(app)
    await sleep(1100)
    t.equal((await reserve(app)).statusCode, 204)
    t.match(
      await client.hgetall(`jobgate:{q}:job:${waiting}`),
      { state: 'queued', attempts: '1' },
      'a lease that ran out while paused was reclaimed',
    )

    // A worker long-polling the paused queue gets a job as soon as it is resumed.
    const started = Date.now()
    const polling = reserve(app, { worker: 'w', wait_ms: 10_000 })
    await sleep(300)
    await resume(app)
    const woken = await polling
    t.equal(woken.statusCode, 200)
    t.equal(woken.json().job.id, waiting, 'the reclaimed job first, at the front of its list')
    t.ok(Date.now() - started < 3000, `woken by resume, not by the wait running out`)
    t.equal((await reserve(app)).json().job.id, again)
  },
)

t.test(
  'resume wakes a waiting worker for a job that fell due while the queue was paused',
  async (t) => {
    const { app, client } = await startGateway(t)
    const due = await submit(app, { type: 't', delay_ms: 300 })
    await pause(app)
    t.equal((await reserve(app)).statusCode, 204, 'paused')
    await sleep(500) // due now, and still in the scheduled set: no reserve has promoted it
    t.not(await client.zscore('jobgate:{q}:scheduled', due), null, 'still scheduled')
    const waiter = client.duplicate()
    t.teardown(() => waiter.disconnect())
    const woken = waiter.blpop('jobgate:{q}:wake', 5)
    await sleep(100)
    const started = Date.now()
    await resume(app)
    t.ok(await woken, 'a blocked worker got a token')
    t.ok(Date.now() - started < 1000, 'at once')
    t.equal((await reserve(app)).json().job.id, due)
  },
)

t.test(
  'resume with only later work pending still wakes one worker to learn its wait',
  async (t) => {
    const { app, client } = await startGateway(t)
    await submit(app, { type: 't', delay_ms: 60_000 })
    await pause(app)
    await reserve(app) // the paused reply deletes the wake list
    await resume(app)
    t.equal(await client.llen('jobgate:{q}:wake'), 1)
  },
)

t.test(
  'a real PHP worker runs nothing of a paused queue and everything once resumed',
  async (t) => {
    const { app, redis } = await startGateway(t)
    const dir = mkdtempSync(join(tmpdir(), 'jobgate-pause-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const record = join(dir, 'runs.log')
    writeFileSync(record, '')
    await submit(app, { type: 'record' })
    // A long block time: only resume's wake-up tokens can explain a prompt start.
    const worker = new PhpWorker({
      redisUrl: redis.url,
      args: ['--sleep=20'],
      env: { JOBGATE_RECORD: record },
    })
    t.teardown(() => worker.stop())
    const runs = () => readFileSync(record, 'utf8').split('\n').filter(Boolean).length
    const deadline = Date.now() + 10_000
    while (runs() < 1 && Date.now() < deadline) await sleep(20)
    t.equal(runs(), 1, 'the worker runs jobs')

    await pause(app)
    const held: string[] = []
    for (let i = 0; i < 5; i++) held.push(await submit(app, { type: 'record' }))
    await sleep(1500)
    t.equal(runs(), 1, 'nothing ran while paused')

    const resumedAt = Date.now()
    await resume(app)
    while (runs() < 6 && Date.now() < resumedAt + 10_000) await sleep(20)
    t.equal(runs(), 6, 'all five ran once resumed')
    t.ok(Date.now() - resumedAt < 5000, `within ${Date.now() - resumedAt} ms, not a block time`)
    t.ok(worker.running)
  },
)
