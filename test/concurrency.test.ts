import t from 'tap'
import { startGateway } from './helpers/gateway.js'

t.test('50 concurrent POSTs with one key over real sockets → one job', async (t) => {
  const { url, client } = await startGateway(t, { listen: true })
  const body = JSON.stringify({ type: 'charge', payload: { order: 7, amount: 1999 } })
  const responses = await Promise.all(
    Array.from({ length: 50 }, () =>
      fetch(`${url}/v1/queues/payments/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': 'order-7' },
        body,
      }),
    ),
  )
  const bodies = await Promise.all(responses.map((res) => res.json() as Promise<{ id: string }>))
  t.strictSame(
    responses.map((res) => res.status),
    Array(50).fill(202),
    'every request is accepted',
  )
  const ids = new Set(bodies.map((job) => job.id))
  t.equal(ids.size, 1, 'one distinct job id')
  const [id] = ids
  t.equal(
    responses.filter((res) => res.headers.get('idempotent-replayed') === 'true').length,
    49,
    'all but the first are replays',
  )
  t.ok(responses.every((res) => res.headers.get('location') === `/v1/queues/payments/jobs/${id}`))
  t.strictSame(await client.keys('jobgate:{payments}:job:*'), [`jobgate:{payments}:job:${id}`])
  t.strictSame(await client.lrange('jobgate:{payments}:ready:5', 0, -1), [id])
  t.equal(await client.hget('jobgate:{payments}:stats', 'enqueued'), '1')
})

t.test('50 concurrent POSTs with distinct keys → 50 jobs, each once', async (t) => {
  const { url, client } = await startGateway(t, { listen: true })
  const responses = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      fetch(`${url}/v1/queues/q/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': `k-${i}` },
        body: JSON.stringify({ type: 't', payload: { i } }),
      }),
    ),
  )
  t.ok(responses.every((res) => res.status === 202))
  const ids = await Promise.all(
    responses.map(async (res) => ((await res.json()) as { id: string }).id),
  )
  t.equal(new Set(ids).size, 50)
  t.strictSame((await client.lrange('jobgate:{q}:ready:5', 0, -1)).sort(), [...ids].sort())
})
