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
  t.strictSame(res.json(), { total: 0, offset: 0, limit: 50, next: null, jobs: [] })
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
    // A cursor's number is below 9 × 10^15, where the scripts still read it exactly.
    ['/v1/queues/q/jobs?state=queued&after=9999999999999999.abc', /after/],
    ['/v1/queues/q/jobs?state=scheduled&after=9007199254740993.abc', /after/],
    ['/v1/queues/q/dead?after=9999999999999999.abc', /after/],
    // ... and written as `next` writes it: no leading zero, which the scripts refuse.
    ['/v1/queues/q/jobs?state=queued&after=00.x', /after/],
    ['/v1/queues/q/jobs?state=scheduled&after=0123.abc', /after/],
    ['/v1/queues/q/jobs?state=active&after=01.abc', /after/],
    ['/v1/queues/q/dead?after=0123.abc', /after/],
  ]
  for (const [url, detail] of cases) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 400, url)
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8', url)
    t.equal(res.json().code, 'VALIDATION_FAILED', url)
    t.match(res.json().detail, detail, url)
  }
  t.strictSame(await dataKeys(client), before, 'no key written')
  for (const url of [
    '/v1/queues/q/jobs?state=queued&after=8999999999999999.abc',
    '/v1/queues/q/jobs?state=active&after=8999999999999999.abc',
    '/v1/queues/q/dead?after=8999999999999999.abc',
  ]) {
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, `the largest: ${url}`)
  }
})

t.test('queued, walked by next while workers take jobs and producers add them', async (t) => {
  const { app } = await startGateway(t)
  const submitted: string[] = []
  for (const priority of [5, 9, 5, 0, 9, 5, 5, 0]) {
    submitted.push(await submit(app, { type: 't', priority }))
  }
  const [a, b, c, d, e, f, g, h] = submitted
  t.strictSame(ids((await list(app, 'state=queued')).body), [b, e, a, c, f, g, d, h])

  const first = (await list(app, 'state=queued&limit=3')).body
  t.strictSame(ids(first), [b, e, a])
  t.match(
    first.next,
    new RegExp(`^6\\d{14}\\.${a}$`),
    "the cursor names the page's last job, by priority (5 + 1) and place in line",
  )

  for (let i = 0; i < 3; i++) {
    await app.inject({ method: 'POST', url: '/v1/queues/q/jobs:reserve', payload: { worker: 'w' } })
  }
  const ahead = await submit(app, { type: 't', priority: 9 })
  const behind = await submit(app, { type: 't', priority: 5 })
  const last = await submit(app, { type: 't', priority: 0 })

  const second = (await list(app, `state=queued&limit=3&after=${first.next}`)).body
  t.strictSame(ids(second), [c, f, g], 'the jobs after the cursor, though it was taken')
  t.equal(second.offset, 1, 'behind the job that joined ahead')
  t.equal(second.total, 8)
  const third = (await list(app, `state=queued&limit=10&after=${second.next}`)).body
  t.strictSame(ids(third), [behind, d, h, last], 'then the rest, those added behind included')
  t.equal(third.next, null)
  t.notOk(ids(third).includes(ahead))
})

t.test(
  'queued, walked by next when the cursor went back to the list or was cancelled',
  async (t) => {
    const { app } = await startGateway(t)
    const reserve = async () =>
      (
        await app.inject({
          method: 'POST',
          url: '/v1/queues/q/jobs:reserve',
          payload: { worker: 'w', wait_ms: 0 },
        })
      ).json()
    const submitted: string[] = []
    for (let i = 0; i < 6; i++) submitted.push(await submit(app, { type: 't' }))
    const [a, b, c, d, e, f] = submitted as [string, string, string, string, string, string]

    // The cursor's job is taken and retried at once: it goes back to the end of the line.
    const first = (await list(app, 'state=queued&limit=2')).body
    t.strictSame(ids(first), [a, b])
    const oldForm = (await list(app, `state=queued&limit=2&after=5.${b}`)).body
    t.strictSame(ids(oldForm), [c, d], 'a cursor of the form before places in line still works')
    await reserve()
    const taken = await reserve()
    t.equal(taken.job.id, b)
    const retried = await app.inject({
      method: 'POST',
      url: `/v1/queues/q/jobs/${b}:retry`,
      payload: { lease_token: taken.lease.token, error: { message: 'm' }, delay_ms: 0 },
    })
    t.equal(retried.statusCode, 200)
    t.strictSame(ids((await list(app, 'state=queued')).body), [c, d, e, f, b])
    const second = (await list(app, `state=queued&limit=2&after=${first.next}`)).body
    t.strictSame(ids(second), [c, d], 'the jobs that were behind it, not the end of the list')
    t.equal(second.offset, 0)
    const third = (await list(app, `state=queued&after=${second.next}`)).body
    t.strictSame(ids(third), [e, f, b], 'then the rest, the retried job in its new place')

    // The cursor's job is cancelled from the middle of the list: nothing shown comes again.
    const page = (await list(app, 'state=queued&limit=2')).body
    t.strictSame(ids(page), [c, d])
    const canceled = await app.inject({ method: 'DELETE', url: `/v1/queues/q/jobs/${d}` })
    t.equal(canceled.statusCode, 200)
    const next = (await list(app, `state=queued&after=${page.next}`)).body
    t.strictSame(ids(next), [e, f, b], 'right after the cancelled cursor')
    t.equal(next.offset, 1, 'behind the job shown before it')
  },
)

t.test(
  'places in line never fall from the front of a ready list to its back, whatever pushed the jobs',
  async (t) => {
    const { app, client } = await startGateway(t)
    const reserve = async () =>
      (
        await app.inject({
          method: 'POST',
          url: '/v1/queues/q/jobs:reserve',
          payload: { worker: 'w', wait_ms: 0, lease_ms: 1000 },
        })
      ).json()
    const finish = (id: string, action: string, payload: object) =>
      app.inject({ method: 'POST', url: `/v1/queues/q/jobs/${id}:${action}`, payload })
    const dying = await submit(app, { type: 't', max_attempts: 1 })
    const retried = await submit(app, { type: 't' })
    const lapsed = await submit(app, { type: 't' })
    await submit(app, { type: 't', delay_ms: 300 })
    for (let i = 0; i < 3; i++) await submit(app, { type: 't' })

    const first = await reserve()
    await finish(dying, 'fail', { lease_token: first.lease.token, error: { message: 'm' } })
    const second = await reserve()
    await finish(retried, 'retry', {
      lease_token: second.lease.token,
      error: { message: 'm' },
      delay_ms: 0,
    })
    t.equal((await reserve()).job.id, lapsed, 'its lease runs out, unreported')
    await app.inject({ method: 'POST', url: `/v1/queues/q/dead/${dying}:redrive` })
    for (let i = 0; i < 2; i++) await submit(app, { type: 't' })
    await new Promise((resolve) => setTimeout(resolve, 1100))
    // This reserve promotes the due job and puts the lapsed one back in front, then takes it.
    t.equal((await reserve()).job.id, lapsed)

    const list = await client.lrange('jobgate:{q}:ready:5', 0, -1)
    const places: number[] = []
    for (const id of list.reverse()) {
      places.push(Number(await client.hget(`jobgate:{q}:job:${id}`, 'ready_seq')))
    }
    t.equal(places.length, 8, 'every job but the one leased is waiting')
    t.ok(
      places.every((place, i) => i === 0 || place >= (places[i - 1] as number)),
      `front to back: ${places.join(', ')}`,
    )
    t.equal(new Set(places).size, places.length, 'every job pushed onto the back has its own')
  },
)

t.test('scheduled, walked by next while jobs are canceled and added', async (t) => {
  const { app } = await startGateway(t)
  const due: string[] = []
  for (let i = 1; i <= 5; i++) due.push(await submit(app, { type: 't', delay_ms: i * 10_000 }))
  const first = (await list(app, 'state=scheduled&limit=2')).body
  t.strictSame(ids(first), due.slice(0, 2))
  t.match(first.next, new RegExp(`^\\d{13}\\.${due[1]}$`))

  for (const id of due.slice(0, 2)) {
    const canceled = await app.inject({ method: 'DELETE', url: `/v1/queues/q/jobs/${id}` })
    t.equal(canceled.statusCode, 200)
  }
  const sooner = await submit(app, { type: 't', delay_ms: 5_000 })
  const second = (await list(app, `state=scheduled&limit=2&after=${first.next}`)).body
  t.strictSame(ids(second), due.slice(2, 4), 'right after the canceled cursor')
  t.equal(second.offset, 1)
  const third = (await list(app, `state=scheduled&after=${second.next}`)).body
  t.strictSame(ids(third), due.slice(4))
  t.equal(third.next, null)
  t.notOk([...ids(second), ...ids(third)].includes(sooner))

  const bad = await app.inject({ method: 'GET', url: '/v1/queues/q/jobs?state=active&after=1.' })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'VALIDATION_FAILED')
})

t.test(
  'a cursor naming a job the list never held places the page where it would stand',
  async (t) => {
    const { app } = await startGateway(t)
    const high = await submit(app, { type: 't', priority: 9 })
    const low = await submit(app, { type: 't', priority: 1 })
    const soon = await submit(app, { type: 't', delay_ms: 10_000 })
    const later = await submit(app, { type: 't', delay_ms: 30_000 })
    const nobody = '00000000-0000-4000-8000-000000000000'

    // No record: its priority comes from the cursor; after every job of a higher priority.
    const queued = (await list(app, `state=queued&after=5.${nobody}`)).body
    t.strictSame(ids(queued), [low])
    t.equal(queued.offset, 1)
    t.strictSame(ids((await list(app, `state=queued&after=0.${nobody}`)).body), [])
    t.strictSame(ids((await list(app, `state=queued&after=99.${nobody}`)).body), [high, low])

    const dueAt = Date.now() + 20_000
    const scheduled = (await list(app, `state=scheduled&after=${dueAt}.${nobody}`)).body
    t.strictSame(ids(scheduled), [later], 'after the jobs due before it')
    t.notOk(ids(scheduled).includes(soon))
    t.strictSame(ids((await list(app, `state=active&after=${dueAt}.${nobody}`)).body), [])
  },
)

t.test('a cursor among many jobs due at one instant is placed by their ids', async (t) => {
  const { app, client } = await startGateway(t)
  const runAt = new Date(Date.now() + 3_600_000).toISOString()
  const batch = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs:batch',
    payload: {
      jobs: Array.from({ length: 300 }, (_, i) => ({
        idempotency_key: `k${i}`,
        type: 't',
        run_at: runAt,
      })),
    },
  })
  t.equal(batch.statusCode, 200)
  await submit(app, { type: 't', delay_ms: 60_000 }) // one due before them
  const score = String(Date.parse(runAt))
  const tied = await client.zrangebyscore('jobgate:{q}:scheduled', score, score)
  t.equal(tied.length, 300)
  // Cursors whose job is not (or no longer) there: before, among and after the tied ids.
  const cursors = [
    '0',
    'ffffffff',
    ...Array.from({ length: 40 }, () => crypto.randomUUID()),
    ...tied.slice(0, 5).map((id) => `${id}0`),
  ]
  for (const id of cursors) {
    const page = (await list(app, `state=scheduled&limit=1&after=${score}.${id}`)).body
    const before = tied.filter((tie) => Buffer.compare(Buffer.from(tie), Buffer.from(id)) < 0)
    t.equal(page.offset, 1 + before.length, `after ${id}`)
  }
  // A cursor whose job is still there: right after it.
  const page = (await list(app, `state=scheduled&limit=1&after=${score}.${tied[150]}`)).body
  t.equal(page.offset, 152)
  t.equal(page.jobs[0]?.id, tied[151])
})

t.test(
  'progress or a result a record holds as text JSON.parse refuses is shown as that text',
  async (t) => {
    const { app, client } = await startGateway(t)
    const running = await submit(app, { type: 't' })
    const reserved = await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs:reserve',
      payload: { worker: 'w' },
    })
    t.equal(reserved.json().job.id, running)
    // What Redis's JSON decoder took before the scripts read it strictly.
    await client.hset(`jobgate:{q}:job:${running}`, 'progress', '{"done":-.5}')
    const active = await list(app, 'state=active')
    t.equal(active.status, 200)
    t.equal(active.body.jobs[0].progress, '{"done":-.5}')

    const finished = await submit(app, { type: 't' })
    await client.hset(`jobgate:{q}:job:${finished}`, 'result', '[01]')
    const status = await app.inject({ method: 'GET', url: `/v1/queues/q/jobs/${finished}` })
    t.equal(status.statusCode, 200)
    t.equal(status.json().result, '[01]')
  },
)
