import { request } from 'node:http'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { startGateway, startGatewayBehindProxy } from './helpers/gateway.js'
import { sleep } from './helpers/load.js'
import { RedisServer } from './helpers/redis-server.js'

async function submit(
  app: FastifyInstance,
  queue: string,
  body: object = { type: 't' },
): Promise<string> {
  const res = await app.inject({ method: 'POST', url: `/v1/queues/${queue}/jobs`, payload: body })
  if (res.statusCode !== 202) throw new Error(`submit: ${res.statusCode} ${res.body}`)
  return res.json().id
}

async function reserve(app: FastifyInstance, queue: string, body: object = { worker: 'php-1' }) {
  return app.inject({ method: 'POST', url: `/v1/queues/${queue}/jobs:reserve`, payload: body })
}

/** POSTs `body` over a connection of its own and closes it `ms` later, unanswered. */
async function postAndLeave(url: string, body: object, ms: number, beforeLeaving = () => {}) {
  const leaving = request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    agent: false,
  })
  leaving.on('error', () => {})
  leaving.end(JSON.stringify(body))
  await sleep(ms)
  beforeLeaving()
  leaving.destroy()
}

function post(app: FastifyInstance, url: string, payload: object) {
  return app.inject({ method: 'POST', url, payload })
}

t.test('reserve → ack over HTTP; the status shows every step', async (t) => {
  const { app } = await startGateway(t)
  const id = await submit(app, 'q', { type: 'echo', payload: { n: 1 } })
  const res = await reserve(app, 'q', { worker: 'php-1', lease_ms: 10_000 })
  t.equal(res.statusCode, 200)
  const { job, lease } = res.json()
  t.match(job, {
    id,
    queue: 'q',
    type: 'echo',
    payload: { n: 1 },
    attempts: 1,
    max_attempts: 3,
    priority: 5,
  })
  t.type(lease.token, 'string')
  const active = (await app.inject({ method: 'GET', url: `/v1/queues/q/jobs/${id}` })).json()
  t.equal(active.state, 'active')
  t.equal(active.worker, 'php-1')
  t.equal(Date.parse(active.lease_deadline) - Date.parse(active.started_at), 10_000)

  const beat = await post(app, `/v1/queues/q/jobs/${id}:heartbeat`, {
    lease_token: lease.token,
    lease_ms: 20_000,
    progress: { step: 2 },
  })
  t.equal(beat.statusCode, 200)
  t.match(beat.json(), { id, state: 'active', run_at: null, finished_at: null })
  t.ok(Date.parse(beat.json().lease_deadline) > Date.parse(active.lease_deadline))

  const ack = await post(app, `/v1/queues/q/jobs/${id}:ack`, {
    lease_token: lease.token,
    result: { ok: true },
  })
  t.equal(ack.statusCode, 200)
  t.match(ack.json(), { id, state: 'succeeded', run_at: null, lease_deadline: null })
  const done = (await app.inject({ method: 'GET', url: `/v1/queues/q/jobs/${id}` })).json()
  t.match(done, {
    state: 'succeeded',
    attempts: 1,
    result: { ok: true },
    progress: { step: 2 },
    lease_deadline: null,
  })
  t.strictSame(
    done.history.map((entry: { state: string }) => entry.state),
    ['queued', 'active', 'succeeded'],
  )
  t.match(done.history[1], { worker: 'php-1', attempt: 1 })

  const late = await post(app, `/v1/queues/q/jobs/${id}:ack`, { lease_token: lease.token })
  t.equal(late.statusCode, 409)
  t.match(late.json(), { code: 'LEASE_LOST', state: 'succeeded' })
})

t.test('ack with reserve: the next job comes leased in the same answer', async (t) => {
  const { app, client } = await startGateway(t)
  const first = await submit(app, 'q', { type: 'echo', payload: { n: 1 } })
  const second = await submit(app, 'q', { type: 'echo', payload: { n: 2 } })
  const { lease } = (await reserve(app, 'q')).json()
  const ack = await post(app, `/v1/queues/q/jobs/${first}:ack`, {
    lease_token: lease.token,
    result: 1,
    reserve: { worker: 'php-2', lease_ms: 12_000 },
  })
  t.equal(ack.statusCode, 200)
  const { next, ...settlement } = ack.json()
  t.match(settlement, { id: first, state: 'succeeded', run_at: null, lease_deadline: null })
  t.match(next.job, { id: second, queue: 'q', type: 'echo', payload: { n: 2 }, attempts: 1 })
  const stored = await client.hgetall(`jobgate:{q}:job:${second}`)
  t.match(stored, {
    state: 'active',
    worker: 'php-2',
    attempts: '1',
    lease_token: next.lease.token,
  })
  t.equal(Number(stored.lease_deadline) - Number(stored.started_at), 12_000)
  t.equal(Date.parse(next.lease.deadline), Number(stored.lease_deadline))
  t.equal(await client.zscore('jobgate:{q}:active', second), stored.lease_deadline)
  t.equal(await client.hget(`jobgate:{q}:job:${first}`, 'state'), 'succeeded', 'acked first')

  // Nothing ready: next is null at once (reserve's wait_ms does not apply).
  const started = Date.now()
  const last = await post(app, `/v1/queues/q/jobs/${second}:ack`, {
    lease_token: next.lease.token,
    reserve: { worker: 'php-2' },
  })
  t.equal(last.statusCode, 200)
  t.equal(last.json().next, null)
  t.ok(Date.now() - started < 1000, 'did not wait for a job')
  t.equal(await client.hget(`jobgate:{q}:job:${second}`, 'state'), 'succeeded')

  // Without reserve, the answer has no next.
  const third = await submit(app, 'q')
  const plain = (await reserve(app, 'q')).json()
  const alone = await post(app, `/v1/queues/q/jobs/${third}:ack`, {
    lease_token: plain.lease.token,
  })
  t.notOk('next' in alone.json())
})

t.test('ack with reserve that loses its lease leases nothing', async (t) => {
  const { app, client } = await startGateway(t)
  const held = await submit(app, 'q')
  const waiting = await submit(app, 'q')
  await reserve(app, 'q')
  const before = await client.hgetall(`jobgate:{q}:job:${waiting}`)
  const stale = await post(app, `/v1/queues/q/jobs/${held}:ack`, {
    lease_token: 'not-the-token',
    reserve: { worker: 'php-2' },
  })
  t.equal(stale.statusCode, 409)
  t.match(stale.json(), { code: 'LEASE_LOST', state: 'active' })
  t.strictSame(await client.hgetall(`jobgate:{q}:job:${waiting}`), before, 'still queued')
  t.strictSame(await client.lrange('jobgate:{q}:ready:5', 0, -1), [waiting])
  const missing = await post(app, '/v1/queues/q/jobs/nope:ack', {
    lease_token: 'x',
    reserve: { worker: 'php-2' },
  })
  t.equal(missing.statusCode, 404)
  t.strictSame(await client.lrange('jobgate:{q}:ready:5', 0, -1), [waiting])
})

t.test('ack with reserve whose reserve fails: the ack stands, next is absent', async (t) => {
  const { app, client } = await startGateway(t)
  const id = await submit(app, 'q')
  const { lease } = (await reserve(app, 'q')).json()
  // A key of the wrong type makes the reserve script fail; the ack does not touch it.
  await client.set('jobgate:{q}:scheduled', 'not a sorted set')
  const res = await post(app, `/v1/queues/q/jobs/${id}:ack`, {
    lease_token: lease.token,
    reserve: { worker: 'php-2' },
  })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { id, state: 'succeeded' })
  t.notOk('next' in res.json(), 'not null: nothing says the queue was empty')
  t.equal(await client.hget(`jobgate:{q}:job:${id}`, 'state'), 'succeeded')
})

t.test('reserve with nothing to do → 204; a long poll is woken by a submission', async (t) => {
  const { app } = await startGateway(t)
  const empty = await reserve(app, 'q')
  t.equal(empty.statusCode, 204)
  t.equal(empty.body, '')
  const started = Date.now()
  const waiting = reserve(app, 'q', { worker: 'w', wait_ms: 5000 })
  await new Promise((resolve) => setTimeout(resolve, 150))
  const id = await submit(app, 'q')
  const res = await waiting
  t.equal(res.statusCode, 200)
  t.equal(res.json().job.id, id)
  t.ok(Date.now() - started < 2000, 'answered when the job came, not after wait_ms')
  const timedOut = Date.now()
  t.equal((await reserve(app, 'q', { worker: 'w', wait_ms: 300 })).statusCode, 204)
  t.ok(Date.now() - timedOut >= 280, 'waited wait_ms')
})

t.test('fail → dead; retry → scheduled with its back-off; unknown job → 404', async (t) => {
  const { app } = await startGateway(t)
  const doomed = await submit(app, 'q', { type: 't', max_attempts: 5 })
  let lease = (await reserve(app, 'q')).json().lease
  const fail = await post(app, `/v1/queues/q/jobs/${doomed}:fail`, {
    lease_token: lease.token,
    error: { message: 'card declined', class: 'PaymentError' },
  })
  t.equal(fail.statusCode, 200)
  t.match(fail.json(), { state: 'dead', run_at: null })
  const dead = (await app.inject({ method: 'GET', url: `/v1/queues/q/jobs/${doomed}` })).json()
  t.match(dead, {
    state: 'dead',
    attempts: 1,
    last_error: { message: 'card declined', class: 'PaymentError' },
  })

  const flaky = await submit(app, 'q', { type: 't', backoff: { delay_ms: 5000, jitter: false } })
  lease = (await reserve(app, 'q')).json().lease
  const retry = await post(app, `/v1/queues/q/jobs/${flaky}:retry`, {
    lease_token: lease.token,
    error: { message: 'timeout talking to SMTP' },
  })
  t.equal(retry.statusCode, 200)
  t.equal(retry.json().state, 'scheduled')
  const status = (await app.inject({ method: 'GET', url: `/v1/queues/q/jobs/${flaky}` })).json()
  t.equal(status.state, 'scheduled')
  t.equal(status.run_at, retry.json().run_at, 'the next run time is shown')
  t.match(status.last_error, { message: 'timeout talking to SMTP', class: 'Error' })
  t.match(status.history.at(-1), {
    state: 'scheduled',
    attempt: 1,
    delay_ms: 5000,
    error: 'timeout talking to SMTP',
  })

  const shortLived = await submit(app, 'q', { type: 't', ttl_ms: 60_000 })
  lease = (await reserve(app, 'q')).json().lease
  const tooLate = await post(app, `/v1/queues/q/jobs/${shortLived}:retry`, {
    lease_token: lease.token,
    error: { message: 'upstream down' },
    delay_ms: 60_000,
  })
  t.equal(tooLate.statusCode, 200)
  t.match(tooLate.json(), { state: 'expired', run_at: null, finished_at: String })
  t.equal(
    (await app.inject({ method: 'GET', url: `/v1/queues/q/jobs/${shortLived}` })).json().state,
    'expired',
    'a retry at or past its TTL expires the job at once',
  )

  const missing = await post(app, '/v1/queues/q/jobs/nope:ack', { lease_token: 'x' })
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().code, 'JOB_NOT_FOUND')
})

t.test(
  'a reserve sent again with its lease_token gets the same job; so does the reserve of an ack',
  async (t) => {
    const { app, client } = await startGateway(t)
    const first = await submit(app, 'q')
    const second = await submit(app, 'q')
    const body = {
      worker: 'php-1',
      lease_ms: 5000,
      lease_token: '0123456789abcdef0123456789abcdef',
    }
    const leased = await reserve(app, 'q', body)
    t.equal(leased.statusCode, 200)
    t.equal(leased.json().job.id, first)
    t.equal(leased.json().lease.token, body.lease_token, 'the token named by the worker')
    const again = await reserve(app, 'q', { ...body, lease_ms: 60_000 })
    t.equal(again.statusCode, 200)
    t.equal(again.json().job.id, first, 'the job the first answer carried, not the next one')
    t.equal(again.json().job.attempts, 1)
    t.ok(again.json().lease.deadline > leased.json().lease.deadline, 'the lease renewed')
    t.equal(await client.llen('jobgate:{q}:ready:5'), 1)

    const nextToken = 'fedcba9876543210fedcba9876543210'
    const acked = await post(app, `/v1/queues/q/jobs/${first}:ack`, {
      lease_token: body.lease_token,
      reserve: { worker: 'php-1', lease_token: nextToken },
    })
    t.equal(acked.statusCode, 200)
    t.equal(acked.json().next.job.id, second)
    t.equal(acked.json().next.lease.token, nextToken)
    t.equal(await client.exists(`jobgate:{q}:lease:${body.lease_token}`), 0, 'the ack ended it')
    // The ack's answer was lost: sent again, the ack finds its job done and leases nothing ...
    const resent = await post(app, `/v1/queues/q/jobs/${first}:ack`, {
      lease_token: body.lease_token,
      reserve: { worker: 'php-1', lease_token: nextToken },
    })
    t.equal(resent.statusCode, 409)
    t.match(resent.json(), { code: 'LEASE_LOST', state: 'succeeded', ended_as: 'succeeded' })
    // ... and a reserve with the token of the lost next job gets that job.
    const recovered = await reserve(app, 'q', { worker: 'php-1', lease_token: nextToken })
    t.equal(recovered.statusCode, 200)
    t.equal(recovered.json().job.id, second)
    t.equal(recovered.json().job.attempts, 1)
  },
)

t.test('worker routes reject bad input and change nothing', async (t) => {
  const { app, client } = await startGateway(t)
  const id = await submit(app, 'q')
  const { lease } = (await reserve(app, 'q')).json()
  const other = await submit(app, 'q')
  const before = await client.hgetall(`jobgate:{q}:job:${id}`)
  const cases: [string, object][] = [
    ['/v1/queues/q/jobs:reserve', {}],
    ['/v1/queues/q/jobs:reserve', { worker: 'w', lease_ms: 10 }],
    ['/v1/queues/q/jobs:reserve', { worker: 'w', wait_ms: 60_000 }],
    ['/v1/queues/q/jobs:reserve', { worker: 'has space' }],
    ['/v1/queues/q/jobs:reserve', { worker: 'w', lease_token: 'short-token' }],
    ['/v1/queues/q/jobs:reserve', { worker: 'w', lease_token: 'a token with spaces in it' }],
    ['/v1/queues/q/jobs:reserve', { worker: 'w', lease_token: 'x'.repeat(129) }],
    [`/v1/queues/q/jobs/${id}:ack`, {}],
    [`/v1/queues/q/jobs/${id}:ack`, { lease_token: lease.token, extra: 1 }],
    [`/v1/queues/q/jobs/${id}:ack`, { lease_token: lease.token, reserve: {} }],
    [
      `/v1/queues/q/jobs/${id}:ack`,
      { lease_token: lease.token, reserve: { worker: 'w', lease_ms: 10 } },
    ],
    [
      `/v1/queues/q/jobs/${id}:ack`,
      { lease_token: lease.token, reserve: { worker: 'w', wait_ms: 100 } },
    ],
    [`/v1/queues/q/jobs/${id}:ack`, { lease_token: lease.token, reserve: 'w' }],
    [
      `/v1/queues/q/jobs/${id}:ack`,
      { lease_token: lease.token, reserve: { worker: 'w', lease_token: 'é'.repeat(20) } },
    ],
    [`/v1/queues/q/jobs/${id}:fail`, { lease_token: lease.token }],
    [`/v1/queues/q/jobs/${id}:fail`, { lease_token: lease.token, error: { message: '' } }],
    [
      `/v1/queues/q/jobs/${id}:retry`,
      { lease_token: lease.token, error: { message: 'x' }, delay_ms: -5 },
    ],
    [`/v1/queues/q/jobs/${id}:heartbeat`, { lease_token: lease.token, lease_ms: 5 }],
  ]
  for (const [url, body] of cases) {
    const res = await post(app, url, body)
    t.equal(res.statusCode, 400, `${url} ${JSON.stringify(body)}`)
    t.equal(res.json().code, 'VALIDATION_FAILED')
  }
  t.strictSame(await client.hgetall(`jobgate:{q}:job:${id}`), before, 'the job is untouched')
  t.strictSame(await client.lrange('jobgate:{q}:ready:5', 0, -1), [other], 'no reserve happened')
  const wrong = await post(app, `/v1/queues/q/jobs/${id}:ack`, { lease_token: 'not-the-token' })
  t.equal(wrong.statusCode, 409)
  t.match(wrong.json(), { code: 'LEASE_LOST', state: 'active' })
  t.strictSame(await client.hgetall(`jobgate:{q}:job:${id}`), before)
})

t.test('a result or progress too large for the protocol → 413, nothing changed', async (t) => {
  const { app, client } = await startGateway(t, { env: { BODY_LIMIT: '2mb' } })
  const id = await submit(app, 'q')
  await submit(app, 'q')
  const { lease } = (await reserve(app, 'q')).json()
  const before = await client.hgetall(`jobgate:{q}:job:${id}`)
  const cases: [string, object, string, string][] = [
    [
      'heartbeat',
      { lease_ms: 60_000, progress: 'x'.repeat(65_535) },
      'PROGRESS_TOO_LARGE',
      'The progress is longer than 65536 bytes of JSON; nothing was changed.',
    ],
    [
      'ack',
      { result: 'x'.repeat(1_048_575), reserve: { worker: 'w' } },
      'RESULT_TOO_LARGE',
      'The result is longer than 1048576 bytes of JSON; nothing was changed.',
    ],
  ]
  for (const [action, body, code, detail] of cases) {
    const res = await post(app, `/v1/queues/q/jobs/${id}:${action}`, {
      lease_token: lease.token,
      ...body,
    })
    t.equal(res.statusCode, 413, action)
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
    t.match(res.json(), { code, detail, status: 413 })
  }
  t.strictSame(await client.hgetall(`jobgate:{q}:job:${id}`), before, 'the job is untouched')
  t.equal(await client.llen('jobgate:{q}:ready:5'), 1, 'the refused ack leased nothing')
})

t.test('cancel: DELETE a queued job; an active one → 409', async (t) => {
  const { app, client } = await startGateway(t)
  const waiting = await submit(app, 'q')
  const res = await app.inject({ method: 'DELETE', url: `/v1/queues/q/jobs/${waiting}` })
  t.equal(res.statusCode, 200)
  t.equal(res.json().state, 'canceled')
  t.ok(res.json().finished_at)
  t.equal(await client.llen('jobgate:{q}:ready:5'), 0)
  const running = await submit(app, 'q')
  await reserve(app, 'q')
  const refused = await app.inject({ method: 'DELETE', url: `/v1/queues/q/jobs/${running}` })
  t.equal(refused.statusCode, 409)
  t.match(refused.json(), { code: 'JOB_NOT_CANCELABLE', state: 'active' })
  const missing = await app.inject({ method: 'DELETE', url: '/v1/queues/q/jobs/missing' })
  t.equal(missing.statusCode, 404)
  t.equal((await reserve(app, 'q')).statusCode, 204, 'the canceled job is never delivered')
})

t.test('dead letters over HTTP: list, redrive one and all, purge one and all', async (t) => {
  const { app, client } = await startGateway(t)
  const ids: string[] = []
  for (let i = 0; i < 4; i++) {
    const id = await submit(app, 'q', { type: 't', max_attempts: 1, payload: { i } })
    const { lease } = (await reserve(app, 'q')).json()
    await post(app, `/v1/queues/q/jobs/${id}:retry`, {
      lease_token: lease.token,
      error: { message: `e${i}` },
    })
    ids.push(id)
  }
  const page = await app.inject({ method: 'GET', url: '/v1/queues/q/dead?limit=3' })
  t.equal(page.statusCode, 200)
  t.match(page.json(), { total: 4, offset: 0, limit: 3 })
  t.equal(page.json().jobs.length, 3)
  t.ok(page.json().jobs.every((job: { state: string }) => job.state === 'dead'))
  const badPage = await app.inject({ method: 'GET', url: '/v1/queues/q/dead?limit=0' })
  t.equal(badPage.statusCode, 400)

  const one = await app.inject({ method: 'POST', url: `/v1/queues/q/dead/${ids[0]}:redrive` })
  t.equal(one.statusCode, 200)
  t.match(one.json(), { id: ids[0], state: 'queued', attempts: 0 })
  const again = await app.inject({ method: 'POST', url: `/v1/queues/q/dead/${ids[0]}:redrive` })
  t.equal(again.statusCode, 409)
  t.match(again.json(), { code: 'JOB_NOT_DEAD', state: 'queued' })

  const purgeOne = await app.inject({ method: 'DELETE', url: `/v1/queues/q/dead/${ids[1]}` })
  t.equal(purgeOne.statusCode, 204)
  t.equal(purgeOne.body, '')
  t.equal((await app.inject({ method: 'GET', url: `/v1/queues/q/jobs/${ids[1]}` })).statusCode, 404)

  const all = await app.inject({ method: 'POST', url: '/v1/queues/q/dead:redrive' })
  t.strictSame(all.json(), { redriven: 2 })
  t.equal(await client.llen('jobgate:{q}:ready:5'), 3)
  for (let i = 0; i < 3; i++) {
    const reserved = (await reserve(app, 'q')).json()
    await post(app, `/v1/queues/q/jobs/${reserved.job.id}:fail`, {
      lease_token: reserved.lease.token,
      error: { message: 'again' },
    })
  }
  const purged = await app.inject({ method: 'DELETE', url: '/v1/queues/q/dead' })
  t.strictSame(purged.json(), { purged: 3 })
  t.strictSame((await app.inject({ method: 'GET', url: '/v1/queues/q/dead' })).json(), {
    total: 0,
    offset: 0,
    limit: 50,
    next: null,
    jobs: [],
  })
  t.equal(
    (await app.inject({ method: 'DELETE', url: '/v1/queues/q/dead/missing' })).statusCode,
    404,
  )
})

t.test('a redrive that wakes a waiting worker answers with the job as it left it', async (t) => {
  const { app } = await startGateway(t)
  const id = await submit(app, 'q', { type: 't', max_attempts: 1 })
  const { lease } = (await reserve(app, 'q')).json()
  await post(app, `/v1/queues/q/jobs/${id}:fail`, {
    lease_token: lease.token,
    error: { message: 'e' },
  })
  const waiting = reserve(app, 'q', { worker: 'idle', wait_ms: 5000 })
  await sleep(150) // the long poll blocks on the wake list
  const redriven = await app.inject({ method: 'POST', url: `/v1/queues/q/dead/${id}:redrive` })
  t.equal(redriven.statusCode, 200)
  t.match(redriven.json(), { id, state: 'queued', attempts: 0 })
  const taken = await waiting
  t.equal(taken.statusCode, 200, 'the waiting worker was woken and took it')
  t.match(taken.json().job, { id, attempts: 1 })
})

t.test('queues: a page counts only its own queues', async (t) => {
  const { app, client } = await startGateway(t)
  for (const queue of ['e', 'b', 'd', 'a', 'c']) await submit(app, queue)
  const names = (body: { queues: { name: string }[] }) => body.queues.map((queue) => queue.name)
  const scripts = async () =>
    Number(/cmdstat_evalsha:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0)

  const calls = await scripts()
  const page = await app.inject({ method: 'GET', url: '/v1/queues?offset=1&limit=2' })
  t.equal(page.statusCode, 200)
  t.equal((await scripts()) - calls, 2, 'two counts calls for a page of two')
  t.match(page.json(), { total: 5, offset: 1, limit: 2, next: 'c' })
  t.strictSame(names(page.json()), ['b', 'c'])
  t.match(page.json().queues[0], { name: 'b', counts: { queued: 1 } })

  const rest = (await app.inject({ method: 'GET', url: '/v1/queues?offset=3' })).json()
  t.strictSame(
    [rest.total, rest.offset, rest.limit, rest.next, names(rest)],
    [5, 3, undefined, null, ['d', 'e']],
  )
  const last = (await app.inject({ method: 'GET', url: '/v1/queues?offset=3&limit=2' })).json()
  t.strictSame([last.next, names(last)], [null, ['d', 'e']], 'the last page names no next')
  const past = (await app.inject({ method: 'GET', url: '/v1/queues?offset=9&limit=2' })).json()
  t.strictSame(past, { total: 5, offset: 9, limit: 2, next: null, queues: [] })
  const all = (await app.inject({ method: 'GET', url: '/v1/queues' })).json()
  t.strictSame(
    [all.total, all.offset, all.limit, all.next, names(all)],
    [5, 0, undefined, null, ['a', 'b', 'c', 'd', 'e']],
  )

  const bads = ['limit=0', 'limit=1001', 'offset=-1', 'limit=x', 'offset=1000001', 'offset=0x1']
  bads.push('after=', 'after=..', 'after=a%2Fb', `after=${'a'.repeat(65)}`)
  for (const query of bads) {
    const bad = await app.inject({ method: 'GET', url: `/v1/queues?${query}` })
    t.equal(bad.statusCode, 400, query)
    t.equal(bad.json().code, 'VALIDATION_FAILED', query)
  }
})

t.test(
  'queues: a walk by next misses no queue that stays, however others come and go',
  async (t) => {
    const { app } = await startGateway(t)
    for (const queue of ['a', 'b', 'c', 'd', 'e', 'f']) await submit(app, queue)
    const list = async (query: string) => {
      const res = await app.inject({ method: 'GET', url: `/v1/queues?${query}` })
      t.equal(res.statusCode, 200, query)
      const body = res.json()
      return { ...body, names: body.queues.map((queue: { name: string }) => queue.name) }
    }
    const removeQueue = async (queue: string) => {
      await app.inject({ method: 'DELETE', url: `/v1/queues/${queue}/jobs?state=queued` })
      t.equal((await app.inject({ method: 'DELETE', url: `/v1/queues/${queue}` })).statusCode, 204)
    }

    const first = await list('limit=2')
    t.strictSame([first.offset, first.next, first.names], [0, 'b', ['a', 'b']])
    await removeQueue('a') // between the pages, a queue on the page before goes
    const second = await list(`limit=2&after=${first.next}`)
    t.strictSame(
      [second.total, second.offset, second.next, second.names],
      [5, 1, 'd', ['c', 'd']],
      'starts right after b; offset is where c stands now',
    )
    t.strictSame((await list('limit=2&offset=2')).names, ['d', 'e'], 'where an offset walk skips c')
    await removeQueue('e') // a queue the walk has not reached goes, another comes
    await submit(app, 'ea')
    const third = await list(`limit=2&after=${second.next}`)
    t.strictSame([third.next, third.names], [null, ['ea', 'f']], 'the walk ends with what is there')

    const gone = await list('limit=2&after=bz')
    t.strictSame([gone.offset, gone.names], [1, ['c', 'd']], 'a cursor that names no queue')
    const skipped = await list('limit=1&after=b&offset=1')
    t.strictSame(
      [skipped.offset, skipped.next, skipped.names],
      [2, 'd', ['d']],
      'after, then offset',
    )
    const rest = await list('after=c')
    t.strictSame(
      [rest.limit, rest.next, rest.names],
      [undefined, null, ['d', 'ea', 'f']],
      'after alone',
    )
  },
)

t.test('queues: list and one queue with counts; unknown queue → 404', async (t) => {
  const { app } = await startGateway(t)
  await submit(app, 'emails')
  await submit(app, 'emails', { type: 't', delay_ms: 60_000 })
  const id = await submit(app, 'sms')
  const { lease } = (await reserve(app, 'sms')).json()
  await post(app, `/v1/queues/sms/jobs/${id}:ack`, { lease_token: lease.token })
  const list = await app.inject({ method: 'GET', url: '/v1/queues' })
  t.equal(list.statusCode, 200)
  t.strictSame(
    list.json().queues.map((queue: { name: string }) => queue.name),
    ['emails', 'sms'],
  )
  const emails = (await app.inject({ method: 'GET', url: '/v1/queues/emails' })).json()
  t.match(emails, { name: 'emails', counts: { queued: 1, scheduled: 1, active: 0, dead: 0 } })
  t.ok(emails.oldest_queued_age_ms >= 0)
  t.equal(emails.totals.enqueued, 2)
  t.equal(emails.throughput.enqueued, 2)
  const sms = (await app.inject({ method: 'GET', url: '/v1/queues/sms' })).json()
  t.match(sms, {
    counts: { queued: 0 },
    oldest_queued_at: null,
    totals: { succeeded: 1 },
    throughput: { succeeded: 1 },
  })
  const missing = await app.inject({ method: 'GET', url: '/v1/queues/nope' })
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().code, 'QUEUE_NOT_FOUND')
})

t.test(
  'a long-poll whose client left takes no wake-up token from the workers still waiting',
  async (t) => {
    const { url, client } = await startGateway(t, { listen: true })
    const poll = (waitMs: number, signal?: AbortSignal) =>
      fetch(`${url}/v1/queues/q/jobs:reserve`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ worker: 'gone', wait_ms: waitMs }),
        ...(signal ? { signal } : {}),
      })
    await fetch(`${url}/v1/queues/q/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 't' }),
    })
    t.equal((await poll(0)).status, 200, 'the queue exists; its one job is taken')
    // This client gives up after 300 ms; its long poll asked for 8 s.
    await poll(8000, AbortSignal.timeout(300)).catch(() => null)
    await new Promise((resolve) => setTimeout(resolve, 100))
    const waiter = client.duplicate()
    t.teardown(() => waiter.disconnect())
    const woken = waiter.blpop('jobgate:{q}:wake', 5)
    await new Promise((resolve) => setTimeout(resolve, 100))
    const started = Date.now()
    await fetch(`${url}/v1/queues/q/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 't' }),
    })
    t.ok(await woken, 'the waiting worker got the token')
    t.ok(Date.now() - started < 1000, `at once (${Date.now() - started} ms)`)
  },
)

t.test(":fail and :retry sent again hear ended_as; another lease's call does not", async (t) => {
  const { app } = await startGateway(t)
  const failed = await submit(app, 'q')
  const retried = await submit(app, 'q', { type: 't', max_attempts: 3 })
  const first = (await reserve(app, 'q')).json()
  const second = (await reserve(app, 'q')).json()
  t.same([first.job.id, second.job.id], [failed, retried])
  const error = { message: 'no' }
  const failBody = { lease_token: first.lease.token, error }
  t.equal((await post(app, `/v1/queues/q/jobs/${failed}:fail`, failBody)).statusCode, 200)
  const failAgain = await post(app, `/v1/queues/q/jobs/${failed}:fail`, failBody)
  t.equal(failAgain.statusCode, 409)
  t.match(failAgain.json(), { code: 'LEASE_LOST', state: 'dead', ended_as: 'dead' })
  const retryBody = { lease_token: second.lease.token, error, delay_ms: 60_000 }
  t.equal((await post(app, `/v1/queues/q/jobs/${retried}:retry`, retryBody)).statusCode, 200)
  const retryAgain = await post(app, `/v1/queues/q/jobs/${retried}:retry`, retryBody)
  t.equal(retryAgain.statusCode, 409)
  t.match(retryAgain.json(), { state: 'scheduled', ended_as: 'scheduled' })
  const stranger = await post(app, `/v1/queues/q/jobs/${retried}:retry`, {
    ...retryBody,
    lease_token: first.lease.token,
  })
  t.equal(stranger.statusCode, 409)
  t.notOk('ended_as' in stranger.json(), "another lease's token hears only the state")
})

t.test(
  "a reserve with the token of another worker's live lease → 409, nothing leased",
  async (t) => {
    const { app, client } = await startGateway(t)
    const first = await submit(app, 'q')
    const second = await submit(app, 'q')
    const token = 'tok-aaaaaaaaaaaaaaaa'
    const held = await reserve(app, 'q', { worker: 'w1', lease_token: token })
    t.equal(held.json().job.id, first)
    const before = await client.hgetall(`jobgate:{q}:job:${first}`)

    const res = await reserve(app, 'q', { worker: 'w2', lease_token: token, wait_ms: 0 })
    t.equal(res.statusCode, 409)
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
    t.match(res.json(), { status: 409, code: 'LEASE_TOKEN_IN_USE', detail: /draw a new one/ })
    t.strictSame(await client.hgetall(`jobgate:{q}:job:${first}`), before)
    t.equal(await client.get(`jobgate:{q}:lease:${token}`), first)
    t.equal((await client.hgetall(`jobgate:{q}:job:${second}`)).state, 'queued')

    const replay = await reserve(app, 'q', { worker: 'w1', lease_token: token })
    t.equal(replay.json().job.id, first, "w1's reserve sent again still gets its job")
  },
)

t.test('a long poll whose client left before the handler ran leases nothing', async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.destroy())
  const app = buildApp(loadConfig({ LOG_LEVEL: 'silent', REDIS_URL: redis.url }))
  // Stands for a hook that takes a while before the handler (the rate limit's Redis count).
  app.addHook('preHandler', async () => sleep(300))
  t.teardown(() => app.close())
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  await postAndLeave(`${url}/v1/queues/q/jobs:reserve`, { worker: 'gone', wait_ms: 10_000 }, 100)
  await sleep(400)
  const submitted = await fetch(`${url}/v1/queues/q/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 't' }),
  })
  const { id } = (await submitted.json()) as { id: string }
  await sleep(300)
  const job = (await (await fetch(`${url}/v1/queues/q/jobs/${id}`)).json()) as { state: string }
  t.equal(job.state, 'queued', 'not leased to a worker that is gone')
})

t.test('a job leased for a caller that left before the answer is queued again', async (t) => {
  const { app, client, url } = await startGateway(t, {
    listen: true,
    env: { RATE_LIMIT: 'off' },
  })
  const first = await submit(app, 'q')
  const second = await submit(app, 'q')
  const head = (await reserve(app, 'q')).json()
  t.equal(head.job.id, first)

  // Redis holds every script until the caller is gone; then the reserve leases all the same.
  const leftWhileLeasing = async (path: string, body: object) => {
    await client.client('PAUSE', 400, 'WRITE')
    await postAndLeave(`${url}${path}`, body, 150)
    await sleep(600)
  }
  const record = (id: string) => client.hgetall(`jobgate:{q}:job:${id}`)

  await leftWhileLeasing(`/v1/queues/q/jobs/${first}:ack`, {
    lease_token: head.lease.token,
    reserve: { worker: 'gone', lease_token: 'token-of-the-next' },
  })
  t.equal((await record(first)).state, 'succeeded', 'the ack stands')
  t.match(await record(second), { state: 'queued', attempts: '0' }, 'the next job is back')
  t.equal(await client.exists('jobgate:{q}:lease:token-of-the-next'), 0)

  await leftWhileLeasing('/v1/queues/q/jobs:reserve', { worker: 'gone', wait_ms: 0 })
  const back = await record(second)
  t.match(back, { state: 'queued', attempts: '0' }, 'not held for a worker that is gone')
  t.equal(back.lease_token, undefined)
  t.equal(await client.zcard('jobgate:{q}:active'), 0)
  t.match(JSON.parse(back[`h:${back.hn}`] ?? '{}'), { state: 'queued', reason: 'released' })

  const taken = (await reserve(app, 'q', { worker: 'here' })).json()
  t.match(taken.job, { id: second, attempts: 1 }, 'the next worker gets it, first attempt')
  const summary = await app.inject({ method: 'GET', url: '/v1/queues/q' })
  t.match(summary.json().totals, { released: 2, reclaimed: 0 }, 'each release is counted')
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /^jobgate_queue_jobs_total\{queue="q",outcome="released"\} 2$/m)
})

t.test(
  'a release that cannot reach Redis leaves the job to its lease: it comes back',
  async (t) => {
    const { app, client, redis, proxy, url } = await startGatewayBehindProxy(t, {
      listen: true,
      env: { RATE_LIMIT: 'off', REDIS_COMMAND_TIMEOUT: '700ms' },
    })
    const id = await submit(app, 'q')
    // The reserve reaches Redis and is held there (within the command timeout); then nothing
    // more gets through, replies do.
    await client.client('PAUSE', 300, 'WRITE')
    const reserve = { worker: 'gone', lease_ms: 2500 }
    await postAndLeave(`${url}/v1/queues/q/jobs:reserve`, reserve, 150, () =>
      proxy.freezeRequests(),
    )
    await sleep(1200) // the release's command timeout has run out

    const held = await client.hgetall(`jobgate:{q}:job:${id}`)
    t.match(held, { state: 'active', worker: 'gone', attempts: '1' }, 'the release never arrived')
    t.equal(await client.hget('jobgate:{q}:stats', 'released'), null)

    const other = buildApp(loadConfig({ LOG_LEVEL: 'silent', REDIS_URL: redis.url }))
    t.teardown(() => other.close())
    await sleep(Math.max(0, Number(held.lease_deadline) - Date.now() + 50))
    const taken = await other.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs:reserve',
      payload: { worker: 'here' },
    })
    t.equal(taken.statusCode, 200)
    t.match(taken.json().job, { id, attempts: 2 }, 'the job is back once its lease ran out')
  },
)
