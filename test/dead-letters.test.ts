import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { startGateway } from './helpers/gateway.js'

/** GET /v1/queues/{queue}/dead with `after`: a walk through a dead-letter set that changes. */

/** Jobs that die now, one after another (of a priority above any job waiting in the queue). */
async function kill(app: FastifyInstance, n: number, priority = 5): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const submitted = await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      payload: { type: 't', payload: { i }, priority },
    })
    const id: string = submitted.json().id
    const reserved = await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs:reserve',
      payload: { worker: 'w' },
    })
    const failed = await app.inject({
      method: 'POST',
      url: `/v1/queues/q/jobs/${id}:fail`,
      payload: { lease_token: reserved.json().lease.token, error: { message: 'no' } },
    })
    if (failed.statusCode !== 200) throw new Error(`fail: ${failed.statusCode} ${failed.body}`)
    ids.push(id)
  }
  return ids
}

async function page(app: FastifyInstance, query: string) {
  const res = await app.inject({ method: 'GET', url: `/v1/queues/q/dead?${query}` })
  if (res.statusCode !== 200) throw new Error(`page: ${res.statusCode} ${res.body}`)
  const body = res.json() as {
    total: number
    offset: number
    next: string | null
    jobs: { id: string }[]
  }
  return { ...body, ids: body.jobs.map((job) => job.id) }
}

const redrive = (app: FastifyInstance, id: string) =>
  app.inject({ method: 'POST', url: `/v1/queues/q/dead/${id}:redrive` })

for (const ties of [false, true]) {
  t.test(
    `a walk by next misses and repeats nothing while jobs die and are redriven${ties ? ', all dead in one millisecond' : ''}`,
    async (t) => {
      const { app, client } = await startGateway(t, { env: { RATE_LIMIT: 'off' } })
      await kill(app, 7)
      if (ties) {
        const [, diedAt = ''] = await client.zrange('jobgate:{q}:dead', '0', '0', 'WITHSCORES')
        const ids = await client.zrange('jobgate:{q}:dead', '0', '-1')
        await client.zadd('jobgate:{q}:dead', ...ids.flatMap((id) => [diedAt, id]))
      }
      const order = (await page(app, 'limit=50')).ids
      t.equal(order.length, 7)

      const first = await page(app, 'limit=3')
      t.strictSame(first.ids, order.slice(0, 3))
      const diedAt = await client.zscore('jobgate:{q}:dead', order[2] ?? '')
      t.equal(first.next, `${diedAt}.${order[2]}`, "the cursor names the page's last entry")

      // Between two pages: the page's first and last entries leave, a new death joins on top.
      t.equal((await redrive(app, order[0] ?? '')).statusCode, 200)
      t.equal((await redrive(app, order[2] ?? '')).statusCode, 200)
      const [newcomer] = await kill(app, 1, 9)
      const fresh = (await page(app, 'limit=50')).ids
      t.equal(fresh.length, 6)

      const second = await page(app, `limit=3&after=${first.next}`)
      t.strictSame(second.ids, order.slice(3, 6), 'right after the cursor, though it left')
      t.equal(second.offset, fresh.indexOf(order[3] ?? ''), 'offset: where the page now starts')
      t.equal(second.total, 6)
      const third = await page(app, `limit=3&after=${second.next}`)
      t.strictSame(third.ids, order.slice(6), 'the last one, the cursor still in the set')
      t.equal(third.next, null, 'nothing follows')
      t.notOk(order.includes(newcomer ?? ''), 'the newcomer died after the walk began')

      const skipped = await page(app, `limit=2&offset=1&after=${first.next}`)
      t.strictSame(skipped.ids, order.slice(4, 6), 'offset counts on from the cursor')
    },
  )
}

t.test('a bad cursor is a 400 problem', async (t) => {
  const { app } = await startGateway(t)
  for (const after of ['x', '12', '12.', '.abc', '12.a.b', '12.a b', `${'1'.repeat(17)}.a`]) {
    const res = await app.inject({
      method: 'GET',
      url: `/v1/queues/q/dead?after=${encodeURIComponent(after)}`,
    })
    t.equal(res.statusCode, 400, after)
    t.equal(res.json().code, 'VALIDATION_FAILED')
  }
})
