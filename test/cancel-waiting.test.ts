import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import t from 'tap'
import { dataKeys, startGateway } from './helpers/gateway.js'
import { sleep } from './helpers/load.js'
import { PhpWorker } from './helpers/php-worker.js'

/** DELETE /v1/queues/{queue}/jobs?state=: cancel every job waiting in a state. */

async function submitMany(app: FastifyInstance, jobs: object[]): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < jobs.length; i += 500) {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs:batch',
      payload: { jobs: jobs.slice(i, i + 500) },
    })
    if (res.statusCode !== 200 || res.json().accepted !== Math.min(500, jobs.length - i)) {
      throw new Error(`batch: ${res.statusCode} ${res.body.slice(0, 300)}`)
    }
    ids.push(...res.json().results.map((result: { job: { id: string } }) => result.job.id))
  }
  return ids
}

function states(client: Redis, ids: string[]): Promise<(string | null)[]> {
  const pipeline = client.pipeline()
  for (const id of ids) pipeline.hget(`jobgate:{q}:job:${id}`, 'state')
  return pipeline.exec().then((replies) => (replies ?? []).map(([, state]) => state as string))
}

const clear = (app: FastifyInstance, query: string, queue = 'q') =>
  app.inject({ method: 'DELETE', url: `/v1/queues/${queue}/jobs?${query}` })

t.test('state=queued cancels every queued job, in batches; nothing else changes', async (t) => {
  const { app, client } = await startGateway(t, { env: { RATE_LIMIT: 'off' } })
  const queued = await submitMany(
    app,
    Array.from({ length: 2501 }, (_, i) => ({ type: 't', priority: i % 10 })),
  )
  const scheduled = await submitMany(app, [
    { type: 't', delay_ms: 60_000 },
    { type: 't', delay_ms: 60_000 },
  ])
  const reserved = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs:reserve',
    payload: { worker: 'w' },
  })
  const running = reserved.json().job.id

  const res = await clear(app, 'state=queued')
  t.equal(res.statusCode, 200)
  t.strictSame(res.json(), { canceled: 2500 }, 'more than two batches')
  const waiting = queued.filter((id) => id !== running)
  const after = await states(client, waiting)
  t.equal(after.filter((state) => state === 'canceled').length, 2500, 'each one canceled')
  for (let priority = 0; priority <= 9; priority++) {
    t.equal(await client.llen(`jobgate:{q}:ready:${priority}`), 0, `ready:${priority} empty`)
  }
  t.strictSame(await states(client, scheduled), ['scheduled', 'scheduled'], 'scheduled kept')
  t.strictSame(await states(client, [running]), ['active'], 'the running job kept')
  t.equal(await client.hget('jobgate:{q}:stats', 'canceled'), '2500')
  const job = (await app.inject({ method: 'GET', url: `/v1/queues/q/jobs/${waiting[0]}` })).json()
  t.match(job, { state: 'canceled', finished_at: String })
  t.equal(job.history.at(-1).state, 'canceled')
  t.match((await app.inject({ method: 'GET', url: '/v1/queues/q' })).json(), {
    counts: { queued: 0, scheduled: 2, active: 1 },
    totals: { canceled: 2500 },
  })
  t.equal(
    (
      await app.inject({
        method: 'POST',
        url: '/v1/queues/q/jobs:reserve',
        payload: { worker: 'w' },
      })
    ).statusCode,
    204,
    'nothing left to reserve',
  )

  const dropped = await clear(app, 'state=scheduled')
  t.strictSame(dropped.json(), { canceled: 2 })
  t.equal(await client.zcard('jobgate:{q}:scheduled'), 0)
  t.strictSame(await states(client, scheduled), ['canceled', 'canceled'])
  t.strictSame((await clear(app, 'state=queued')).json(), { canceled: 0 }, 'again: nothing')
})

t.test(
  'cleared under a running PHP worker: each job runs or is canceled, never both',
  async (t) => {
    const { app, client, redis } = await startGateway(t, { env: { RATE_LIMIT: 'off' } })
    const dir = mkdtempSync(join(tmpdir(), 'jobgate-clear-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const record = join(dir, 'runs.log')
    writeFileSync(record, '')
    const ids = await submitMany(
      app,
      Array.from({ length: 3000 }, () => ({ type: 'record' })),
    )
    const worker = new PhpWorker({ redisUrl: redis.url, env: { JOBGATE_RECORD: record } })
    t.teardown(() => worker.stop())
    const ran = () => readFileSync(record, 'utf8').split('\n').filter(Boolean)
    const deadline = Date.now() + 10_000
    while (ran().length < 100 && Date.now() < deadline) await sleep(5)

    const canceled = (await clear(app, 'state=queued')).json().canceled
    t.ok(canceled > 0, `${canceled} canceled while the worker ran`)
    let final: (string | null)[] = []
    const settle = Date.now() + 10_000
    do {
      await sleep(50)
      final = await states(client, ids)
    } while (
      final.some((state) => state !== 'succeeded' && state !== 'canceled') &&
      Date.now() < settle
    )
    const succeeded = ids.filter((_, i) => final[i] === 'succeeded')
    t.equal(succeeded.length + canceled, ids.length, 'every job succeeded or was canceled')
    const runs = ran().map((line) => line.split(' ')[0])
    t.equal(new Set(runs).size, runs.length, 'no job ran twice')
    t.strictSame(
      [...runs].sort(),
      [...succeeded].sort(),
      'the ones that ran are the succeeded ones',
    )
  },
)

t.test('bad queries: 400 problem, nothing written; an unknown queue clears nothing', async (t) => {
  const { app, client } = await startGateway(t)
  await app.inject({ method: 'POST', url: '/v1/queues/q/jobs', payload: { type: 't' } })
  const before = await dataKeys(client)
  for (const query of ['', 'state=active', 'state=dead', 'state=queued&limit=5']) {
    const res = await clear(app, query)
    const label = query || '(no state)'
    t.equal(res.statusCode, 400, label)
    t.equal(res.json().code, 'VALIDATION_FAILED', label)
  }
  const bad = await clear(app, 'state=queued', 'bad%20name')
  t.equal(bad.statusCode, 400)
  t.strictSame((await clear(app, 'state=queued', 'never')).json(), { canceled: 0 })
  t.strictSame(await dataKeys(client), before, 'no key written')
})
