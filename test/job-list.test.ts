import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { dataKeys, startGateway } from './helpers/gateway.js'

/** GET /v1/queues/{queue}/jobs?state=: the jobs waiting in a state, in the order they leave it. */

async function submit(app: FastifyInstance, body: object): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/v1/queues/q/jobs', payload: body })
  if (res.statusCode !== 202) throw new Error(`submit: ${res.statusCode} ${res.body}`)
  return res.json().id
}

async function list(app: FastifyInstance, query: string) {
  const res = await app.inject({ method: 'GET', url: `/v1/queues/q/jobs?${query}` })
  return { status: res.statusCode, body: res.json() }
}

const ids = (page: { jobs: { id: string }[] }) => page.jobs.map((job) => job.id)

t.test('queued: delivery order across priorities and pages, the order reserve takes', async (t) => {
  const { app } = await startGateway(t)
  const submitted: string[] = []
  for (const priority of [5, 9, 5, 0, 9, 5])
    submitted.push(await submit(app, { type: 't', priority }))
  const [a, b, c, d, e, f] = submitted
  const order = [b, e, a, c, f, d]

  const pages = [
    await list(app, 'state=queued&limit=4'),
    await list(app, 'state=queued&offset=4&limit=4'),
    await list(app, 'state=queued&offset=6'),
  ]
  t.strictSame(
    pages.map((page) => page.status),
    [200, 200, 200],
  )
  t.strictSame(
    pages.map((page) => [page.body.total, page.body.offset, page.body.limit]),
    [
      [6, 0, 4],
      [6, 4, 4],
      [6, 6, 50],
    ],
  )
  t.strictSame(ids(pages[0]?.body), order.slice(0, 4))
  t.strictSame(ids(pages[1]?.body), order.slice(4))
  t.strictSame(ids(pages[2]?.body), [])
  t.match(pages[0]?.body.jobs[0], { id: b, state: 'queued', priority: 9, attempts: 0 })

  const reserved: string[] = []
  for (let i = 0; i < order.length; i++) {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs:reserve',
      payload: { worker: 'w' },
    })
    reserved.push(res.json().job.id)
  }
  t.strictSame(reserved, order, 'reserve takes them in the listed order')
  t.match((await list(app, 'state=queued')).body, { total: 0, jobs: [] })
})

t.test('scheduled by due time; active by lease deadline, with worker and lease', async (t) => {
  const { app } = await startGateway(t)
  const late = await submit(app, { type: 't', delay_ms: 60_000 })
  const early = await submit(app, { type: 't', delay_ms: 20_000 })
  const middle = await submit(app, { type: 't', delay_ms: 40_000 })
  const scheduled = await list(app, 'state=scheduled')
  t.equal(scheduled.status, 200)
  t.equal(scheduled.body.total, 3)
  t.strictSame(ids(scheduled.body), [early, middle, late])
  t.ok(scheduled.body.jobs.every((job: { state: string }) => job.state === 'scheduled'))
  t.ok(
    Date.parse(scheduled.body.jobs[0].run_at) < Date.parse(scheduled.body.jobs[1].run_at),
    'run_at ascending',
  )

  const longer = await submit(app, { type: 't' })
  const shorter = await submit(app, { type: 't' })
  for (const [worker, lease_ms] of [
    ['w-long', 90_000],
    ['w-short', 30_000],
  ] as const) {
    await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs:reserve',
      payload: { worker, lease_ms },
    })
  }
  const active = await list(app, 'state=active')
  t.equal(active.body.total, 2)
  t.strictSame(ids(active.body), [shorter, longer], 'the lease that runs out first comes first')
  t.match(active.body.jobs, [
    { state: 'active', worker: 'w-short', attempts: 1, lease_deadline: String },
    { state: 'active', worker: 'w-long', attempts: 1, lease_deadline: String },
  ])
  t.match((await list(app, 'state=queued')).body, { total: 0, jobs: [] })
})

t.test('a queue never used lists nothing', async (t) => {
  const { app } = await startGateway(t)
  const res = await app.inject({ method: 'GET', url: '/v1/queues/never/jobs?state=queued' })
  t.equal(res.statusCode, 200)
  t.strictSame(res.json(), { total: 0, offset: 0, limit: 50, jobs: [] })
})

t.test('bad queries: 400 problem, nothing written', async (t) => {
  const { app, client } = await startGateway(t)
  await submit(app, { type: 't' })
  const before = await dataKeys(client)
  const cases: [string, RegExp][] = [
    ['/v1/queues/q/jobs', /state/],
    ['/v1/queues/q/jobs?state=dead', /state/],
    ['/v1/queues/q/jobs?state=succeeded', /state/],
    ['/v1/queues/q/jobs?state=queued&limit=0', /limit/],
    ['/v1/queues/q/jobs?state=queued&limit=501', /limit/],
    ['/v1/queues/q/jobs?state=queued&offset=-1', /offset/],
    ['/v1/queues/q/jobs?state=queued&limit=0x10', /limit must be integer/],
    ['/v1/queues/q/jobs?state=queued&limit=1e1', /limit must be integer/],
    ['/v1/queues/q/jobs?state=queued&offset=%201', /offset must be integer/],
    ['/v1/queues/q/jobs?state=queued&limit=2.0', /limit must be integer/],
    ['/v1/queues/q/jobs?state=queued&limit=1&limit=2', /limit must be integer/],
    ['/v1/queues/q/jobs?state=queued&page=2', /page/],
    ['/v1/queues/bad%20name/jobs?state=queued', /queue/],
  ]
  for (const [url, detail] of cases) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 400, url)
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8', url)
    t.equal(res.json().code, 'VALIDATION_FAILED', url)
    t.match(res.json().detail, detail, url)
  }
  t.strictSame(await dataKeys(client), before, 'no key written')
})
