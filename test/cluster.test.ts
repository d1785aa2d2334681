import t from 'tap'
import { EventReader } from './helpers/event-source.js'
import { startClusterGateway } from './helpers/gateway.js'
import { lifecycleSuite } from './helpers/lifecycle-suite.js'
import { RedisCluster } from './helpers/redis-cluster.js'

/** The ingest acceptance tests and the worker lifecycle, on a real local 3-master Redis Cluster. */

const cluster = await RedisCluster.start(3)
t.teardown(() => cluster.destroy())

t.test('ingest on Redis Cluster', async (t) => {
  t.beforeEach(() => cluster.flush())

  t.test('POST → 202, GET → 200; every key of a queue is on one node', async (t) => {
    const { app } = await startClusterGateway(t, cluster)
    const ids: Record<string, string> = {}
    for (const queue of ['emails', 'sms', 'reports', 'billing']) {
      const res = await app.inject({
        method: 'POST',
        url: `/v1/queues/${queue}/jobs`,
        payload: { type: 't' },
      })
      t.equal(res.statusCode, 202)
      ids[queue] = res.json().id
      const status = await app.inject({ method: 'GET', url: String(res.headers.location) })
      t.equal(status.statusCode, 200)
      t.equal(status.json().id, ids[queue])
      t.equal(status.json().state, 'queued')
    }
    const byNode = await cluster.keysByNode()
    for (const queue of Object.keys(ids)) {
      const holders = [...byNode].filter(([, keys]) =>
        keys.some((key) => key.includes(`{${queue}}`)),
      )
      t.equal(holders.length, 1, `${queue}: one node holds all its keys`)
    }
    const nodesUsed = [...byNode].filter(([, keys]) => keys.some((key) => key.includes('{'))).length
    t.ok(nodesUsed > 1, 'queues spread over several nodes')
    const list = await app.inject({ method: 'GET', url: '/v1/queues' })
    t.strictSame(
      list.json().queues.map((queue: { name: string }) => queue.name),
      ['billing', 'emails', 'reports', 'sms'],
    )
  })

  t.test('50 concurrent POSTs with one key → one job; replay and conflict', async (t) => {
    const { url, client } = await startClusterGateway(t, cluster, { listen: true })
    const send = (body: object) =>
      fetch(`${url}/v1/queues/payments/jobs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': 'order-7' },
        body: JSON.stringify(body),
      })
    const responses = await Promise.all(Array.from({ length: 50 }, () => send({ type: 'charge' })))
    const bodies = await Promise.all(responses.map((res) => res.json() as Promise<{ id: string }>))
    t.ok(responses.every((res) => res.status === 202))
    t.equal(new Set(bodies.map((body) => body.id)).size, 1)
    t.equal(responses.filter((res) => res.headers.get('idempotent-replayed') === 'true').length, 49)
    t.strictSame(await client.lrange('jobgate:{payments}:ready:5', 0, -1), [bodies[0]?.id])
    const conflict = await send({ type: 'charge', payload: { other: 1 } })
    t.equal(conflict.status, 422)
  })

  t.test('delay → scheduled; bad input writes nothing', async (t) => {
    const { app, client } = await startClusterGateway(t, cluster, { env: { RATE_LIMIT: 'off' } })
    const res = await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      payload: { type: 't', delay_ms: 60_000 },
    })
    t.equal(res.json().state, 'scheduled')
    t.equal(
      Number(await client.zscore('jobgate:{q}:scheduled', res.json().id)),
      Date.parse(res.json().created_at) + 60_000,
    )
    await cluster.flush()
    for (const payload of [
      { payload: {} },
      { type: 't', extra: 1 },
      { type: 't', max_attempts: 0 },
    ]) {
      const bad = await app.inject({ method: 'POST', url: '/v1/queues/q/jobs', payload })
      t.equal(bad.statusCode, 400)
    }
    const written = [...(await cluster.keysByNode()).values()].flat()
    t.strictSame(written, [], 'nothing written on any node')
  })

  t.test('a batch is one pipeline to the node of its queue', async (t) => {
    const { app, client } = await startClusterGateway(t, cluster)
    const jobs = Array.from({ length: 50 }, (_, i) => ({
      idempotency_key: `k${i % 40}`,
      type: 't',
    }))
    const res = await app.inject({
      method: 'POST',
      url: '/v1/queues/bulk/jobs:batch',
      payload: { jobs },
    })
    t.equal(res.statusCode, 200)
    t.match(res.json(), { accepted: 40, replayed: 10, rejected: 0 })
    t.equal(await client.llen('jobgate:{bulk}:ready:5'), 40)
  })

  t.test('list what waits, pause and clear a queue: scripts on its node', async (t) => {
    const { app, client } = await startClusterGateway(t, cluster)
    const ids: string[] = []
    for (const priority of [1, 9, 5]) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/queues/reports/jobs',
        payload: { type: 't', priority },
      })
      ids.push(res.json().id)
    }
    const listed = await app.inject({ method: 'GET', url: '/v1/queues/reports/jobs?state=queued' })
    t.equal(listed.statusCode, 200)
    t.strictSame(
      listed.json().jobs.map((job: { id: string }) => job.id),
      [ids[1], ids[2], ids[0]],
      'in delivery order',
    )
    const paused = await app.inject({ method: 'POST', url: '/v1/queues/reports:pause' })
    t.match(paused.json(), { paused: true })
    t.equal(await client.exists('jobgate:{reports}:paused'), 1)
    const reserve = await app.inject({
      method: 'POST',
      url: '/v1/queues/reports/jobs:reserve',
      payload: { worker: 'w' },
    })
    t.equal(reserve.statusCode, 204, 'a paused queue leases nothing')
    const cleared = await app.inject({
      method: 'DELETE',
      url: '/v1/queues/reports/jobs?state=queued',
    })
    t.strictSame(cleared.json(), { canceled: 3 })
    t.match((await app.inject({ method: 'POST', url: '/v1/queues/reports:resume' })).json(), {
      paused: false,
      counts: { queued: 0 },
      totals: { canceled: 3 },
    })
    const deleted = await app.inject({ method: 'DELETE', url: '/v1/queues/reports' })
    t.equal(deleted.statusCode, 204, 'an empty queue is deleted: its script on its node')
    t.equal(await client.sismember('jobgate:queues', 'reports'), 0, 'the registry on its own')
    t.equal(await client.exists('jobgate:{reports}:stats'), 0)
  })
})

t.test(
  'event streams on Redis Cluster: one job watched to its end, a queue followed live',
  async (t) => {
    await cluster.flush()
    const { url } = await startClusterGateway(t, cluster, { listen: true })
    const post = async (path: string, body: object) => {
      const res = await fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
      return (await res.json()) as { id: string; job: { id: string }; lease: { token: string } }
    }
    const { id } = await post('/v1/queues/reports/jobs', { type: 't' })
    const other = await post('/v1/queues/sms/jobs', { type: 't' })
    const job = await EventReader.open(`${url}/v1/queues/reports/events?job=${id}`)
    const queue = await EventReader.open(`${url}/v1/queues/sms/events`)
    t.teardown(() => {
      job.close()
      queue.close()
    })
    await job.received(1)
    const reserved = await post('/v1/queues/reports/jobs:reserve', { worker: 'w' })
    await post(`/v1/queues/reports/jobs/${id}:ack`, { lease_token: reserved.lease.token })
    await job.ended
    t.strictSame(
      job.messages<{ state: string }>().map((m) => m.state),
      ['queued', 'active', 'succeeded'],
    )
    await post('/v1/queues/sms/jobs:reserve', { worker: 'w' })
    await queue.received(1)
    t.strictSame(
      queue.messages<{ job: string; state: string }>().map((m) => [m.job, m.state]),
      [[other.id, 'active']],
    )
  },
)

t.test('worker lifecycle on Redis Cluster, Redis transport', async (t) => {
  lifecycleSuite(t, { transport: 'redis', cluster })
})

t.test('worker lifecycle on Redis Cluster, HTTP transport', async (t) => {
  lifecycleSuite(t, { transport: 'http', cluster })
})
