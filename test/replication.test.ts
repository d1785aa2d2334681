import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { QueueKeys } from '../src/queue/keys.js'
import {
  dataKeys,
  startClusterGateway,
  startGateway,
  startSentinelGateway,
} from './helpers/gateway.js'
import { GatewayProcess } from './helpers/gateway-process.js'
import { type Outcome, SubmissionLoad, sleep, until } from './helpers/load.js'
import { parsePrometheus } from './helpers/prometheus.js'
import { RedisCluster } from './helpers/redis-cluster.js'
import { RedisSentinelGroup } from './helpers/redis-sentinel.js'
import { RedisServer } from './helpers/redis-server.js'

/**
 * REDIS_WAIT_REPLICAS: a write is answered only once replicas hold it (Redis WAIT), with real
 * primaries and replicas; a replica frozen with SIGSTOP stands for one that lags or is gone.
 */

/** Long enough for a replica on a machine busy with other tests. */
const WAITING = { REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_TIMEOUT: '3s' }
const JOBS = '/v1/queues/q/jobs'

async function pair(t: Test): Promise<{ primary: RedisServer; replica: RedisServer }> {
  // A replica's first sync would wait 5 s for others to share it.
  const primary = await RedisServer.start({ args: ['--repl-diskless-sync-delay', '0'] })
  t.teardown(() => primary.destroy())
  const replica = await RedisServer.start({
    args: ['--replicaof', '127.0.0.1', String(primary.port)],
  })
  t.teardown(() => replica.destroy())
  await primary.waitForReplicas(1)
  return { primary, replica }
}

/** Resolves once the primary's replica has acknowledged everything the primary wrote. */
async function caughtUp(primary: RedisServer): Promise<void> {
  for (;;) {
    const info = await primary.ask((client) => client.info('replication'))
    const offset = /master_repl_offset:(\d+)/.exec(info)?.[1]
    if (info.includes(`state=online,offset=${offset},`)) return
    await sleep(10)
  }
}

function jobState(server: RedisServer, id: string): Promise<string | null> {
  return server.ask((client) => client.hget(`jobgate:{q}:job:${id}`, 'state'))
}

async function waitCalls(client: Redis): Promise<number> {
  const stats = await client.info('commandstats')
  return Number(/cmdstat_wait:calls=(\d+)/.exec(stats)?.[1] ?? 0)
}

t.test('a 202 comes once the replica holds the job', async (t) => {
  const { primary, replica } = await pair(t)
  const { app } = await startGateway(t, {
    redis: primary,
    env: { ...WAITING, REDIS_WAIT_TIMEOUT: '5s' },
  })
  await replica.pause()
  const started = Date.now()
  const answer = app.inject({
    method: 'POST',
    url: JOBS,
    headers: { 'idempotency-key': 'k1' },
    payload: { type: 't' },
  })
  await sleep(300)
  replica.resume()
  const res = await answer
  t.equal(res.statusCode, 202)
  t.ok(Date.now() - started >= 300, 'not before the replica could take it')
  t.equal(await jobState(replica, res.json().id), 'queued', 'the job is on the replica')
})

t.test(
  'a replica that does not confirm in time: 503 NOT_REPLICATED; the retry replays',
  async (t) => {
    const { primary, replica } = await pair(t)
    const { app, client } = await startGateway(t, {
      redis: primary,
      env: { ...WAITING, REDIS_WAIT_TIMEOUT: '300ms' },
    })
    await replica.pause()
    const post = () =>
      app.inject({
        method: 'POST',
        url: JOBS,
        headers: { 'idempotency-key': 'k1' },
        payload: { type: 't' },
      })
    const refused = await post()
    t.equal(refused.statusCode, 503)
    t.match(refused.headers['content-type'], /^application\/problem\+json/)
    t.equal(refused.headers['retry-after'], '1')
    t.match(refused.json(), {
      code: 'NOT_REPLICATED',
      status: 503,
      detail: /0 of the 1 replica\(s\) required confirmed it within 300 ms.*same Idempotency-Key/,
    })
    const stored = (await client.keys('jobgate:{q}:job:*')).map((key) => key.split(':').pop())
    t.equal(stored.length, 1, 'the job is on the primary, not confirmed')

    replica.resume()
    await caughtUp(primary)
    const retried = await post()
    t.equal(retried.statusCode, 202)
    t.equal(retried.headers['idempotent-replayed'], 'true')
    t.equal(retried.json().id, stored[0], 'the same job')
    t.equal(await jobState(replica, stored[0] as string), 'queued', 'now on the replica')

    await replica.pause()
    const batch = await app.inject({
      method: 'POST',
      url: `${JOBS}:batch`,
      payload: { jobs: [{ idempotency_key: 'b1', type: 't' }] },
    })
    t.equal(batch.statusCode, 503, 'a batch is refused whole')
    t.equal(batch.json().code, 'NOT_REPLICATED')
    const cancel = await app.inject({ method: 'DELETE', url: `${JOBS}/${stored[0]}` })
    t.equal(cancel.statusCode, 503, 'so is a cancel')
    t.equal(cancel.json().code, 'NOT_REPLICATED')
    replica.resume()
    const conflict = await app.inject({
      method: 'POST',
      url: JOBS,
      headers: { 'idempotency-key': 'k1' },
      payload: { type: 'other' },
    })
    t.equal(conflict.statusCode, 422, 'a refusal waits for nothing')
  },
)

t.test(
  'a redrive and a purge wait for the replica too; one that changes nothing does not',
  async (t) => {
    const { primary, replica } = await pair(t)
    const { app } = await startGateway(t, {
      redis: primary,
      env: { ...WAITING, REDIS_WAIT_TIMEOUT: '1s' },
    })
    const dead: string[] = []
    for (let i = 0; i < 2; i++) {
      const posted = await app.inject({ method: 'POST', url: JOBS, payload: { type: 't' } })
      t.equal(posted.statusCode, 202)
      const { job, lease } = (
        await app.inject({ method: 'POST', url: `${JOBS}:reserve`, payload: { worker: 'w' } })
      ).json()
      const failed = await app.inject({
        method: 'POST',
        url: `${JOBS}/${job.id}:fail`,
        payload: { lease_token: lease.token, error: { message: 'no' } },
      })
      t.equal(failed.json().state, 'dead')
      dead.push(job.id)
    }
    await replica.pause()
    const redriven = await app.inject({
      method: 'POST',
      url: `/v1/queues/q/dead/${dead[0]}:redrive`,
    })
    t.equal(redriven.statusCode, 503)
    t.equal(redriven.json().code, 'NOT_REPLICATED')
    t.equal(await jobState(primary, dead[0] as string), 'queued', 'the redrive is on the primary')
    const purged = await app.inject({ method: 'DELETE', url: `/v1/queues/q/dead/${dead[1]}` })
    t.equal(purged.statusCode, 503)
    t.equal(purged.json().code, 'NOT_REPLICATED')
    t.equal(await jobState(primary, dead[1] as string), null, 'the purge is on the primary')
    const nothing = await app.inject({ method: 'POST', url: '/v1/queues/q/dead:redrive' })
    t.equal(nothing.statusCode, 200, 'no dead job left: nothing to wait for')
    replica.resume()
  },
)

t.test('a primary demoted while a write waits for its replica: 503, not 500', async (t) => {
  const { primary, replica } = await pair(t)
  const { app, client } = await startGateway(t, {
    redis: primary,
    env: { ...WAITING, REDIS_WAIT_TIMEOUT: '5s' },
  })
  await replica.pause()
  const answer = app.inject({ method: 'POST', url: JOBS, payload: { type: 't' } })
  while (!String(await client.call('CLIENT', 'LIST')).includes('cmd=wait')) await sleep(10)
  await client.replicaof('127.0.0.1', replica.port)
  const res = await answer
  replica.resume()
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'REDIS_UNAVAILABLE')
})

t.test('with the replica gone, writes get NOT_REPLICATED in turn, never a timeout', async (t) => {
  const { primary, replica } = await pair(t)
  // Each WAIT takes longer than the command timeout: one queued behind another would time out.
  const { app } = await startGateway(t, {
    redis: primary,
    env: { ...WAITING, REDIS_WAIT_TIMEOUT: '1s', REDIS_COMMAND_TIMEOUT: '500ms' },
  })
  const first = await app.inject({ method: 'POST', url: JOBS, payload: { type: 't' } })
  t.equal(first.statusCode, 202)
  await replica.pause()
  const answers = await Promise.all(
    Array.from({ length: 8 }, async (_, i) => {
      await sleep(i * 300)
      const res = await app.inject({ method: 'POST', url: JOBS, payload: { type: 't' } })
      return `${res.statusCode} ${res.json().code}`
    }),
  )
  t.strictSame(
    answers,
    answers.map(() => '503 NOT_REPLICATED'),
  )
  const read = await app.inject({ method: 'GET', url: String(first.headers.location) })
  t.equal(read.statusCode, 200, 'reads still work: the breaker stayed closed')
  t.equal(app.store.breaker.state, 'closed')
})

t.test('concurrent writes share their WAITs', async (t) => {
  const { primary } = await pair(t)
  const { app, client } = await startGateway(t, { redis: primary, env: WAITING })
  const before = await waitCalls(client)
  const answers = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      app.inject({
        method: 'POST',
        url: JOBS,
        headers: { 'idempotency-key': `k${i}` },
        payload: { type: 't' },
      }),
    ),
  )
  t.strictSame(
    answers.map((res) => res.statusCode),
    answers.map(() => 202),
  )
  const waits = (await waitCalls(client)) - before
  t.ok(waits >= 1 && waits < 100, `200 submissions, ${waits} WAITs`)
})

t.test('without REDIS_WAIT_REPLICAS nothing waits and no barrier key is written', async (t) => {
  const { primary } = await pair(t)
  const { app, client } = await startGateway(t, { redis: primary })
  const res = await app.inject({ method: 'POST', url: JOBS, payload: { type: 't' } })
  t.equal(res.statusCode, 202)
  t.equal(await waitCalls(client), 0)
  t.notOk((await dataKeys(client)).includes('jobgate:{q}:barrier'))
})

t.test('/metrics: the replicas online, read on each scrape, and those required', async (t) => {
  const { primary, replica } = await pair(t)
  const { app } = await startGateway(t, { redis: primary, env: WAITING })
  const scrape = async (gateway: FastifyInstance) =>
    parsePrometheus((await gateway.inject({ method: 'GET', url: '/metrics' })).body)
  const before = await scrape(app)
  t.equal(before.get('jobgate_redis_replicas_required'), 1)
  t.equal(before.get('jobgate_redis_replicas_online'), 1)
  // A silent replica holds a submission's WAIT for REDIS_WAIT_TIMEOUT (3 s); a scrape meanwhile
  // does not queue behind it.
  await replica.pause()
  const submission = app.inject({ method: 'POST', url: JOBS, payload: { type: 't' } })
  await sleep(200)
  const started = Date.now()
  const during = await scrape(app)
  const took = Date.now() - started
  t.equal(during.get('jobgate_redis_replicas_online'), 1)
  t.ok(took < 1500, `a scrape during a WAIT took ${took} ms, not the WAIT's 3 s`)
  t.equal((await submission).statusCode, 503, 'the submission did wait, for nothing')
  replica.resume()
  await replica.kill()
  let online: number | undefined
  const deadline = Date.now() + 5000
  do online = (await scrape(app)).get('jobgate_redis_replicas_online')
  while (online !== 0 && Date.now() < deadline)
  t.equal(online, 0, 'the gone replica is no longer counted')

  const plain = await startGateway(t, { redis: primary })
  const samples = await scrape(plain.app)
  t.notOk(samples.has('jobgate_redis_replicas_online'), 'no replica gauges when nothing waits')
  t.notOk(samples.has('jobgate_redis_replicas_required'))

  await primary.kill()
  const down = await scrape(app)
  t.ok(
    Number.isNaN(down.get('jobgate_redis_replicas_online')),
    'NaN, not the last count, while the primary does not answer',
  )
  t.equal(down.get('jobgate_redis_replicas_required'), 1)
})

t.test('at boot the gateway says whether the primary has the replicas it waits for', async (t) => {
  const lone = await RedisServer.start()
  t.teardown(() => lone.destroy())
  const short = await GatewayProcess.start({ REDIS_URL: lone.url, REDIS_WAIT_REPLICAS: '1' })
  t.teardown(() => short.stop())
  const warning = await short.waitForLog((line) => line.replicas_required === 1)
  t.equal(warning.level, 40, 'a warning')
  t.equal(warning.replicas_online, 0)
  t.match(warning.msg, /REDIS_WAIT_REPLICAS is 1 but the Redis primary has 0 replica\(s\) online/)

  const { primary } = await pair(t)
  const enough = await GatewayProcess.start({ REDIS_URL: primary.url, REDIS_WAIT_REPLICAS: '1' })
  t.teardown(() => enough.stop())
  const info = await enough.waitForLog((line) => line.replicas_required === 1)
  t.equal(info.level, 30, 'information')
  t.equal(info.replicas_online, 1)
})

t.test('on Redis Cluster each queue waits for the replicas of its own shard', async (t) => {
  const cluster = await RedisCluster.start(3, { replicas: 1 })
  t.teardown(() => cluster.destroy())
  const { app } = await startClusterGateway(t, cluster, { env: WAITING })
  const shards = await Promise.all(
    Array.from({ length: 12 }, async (_, i) => ({
      queue: `q${i}`,
      ...(await cluster.serversOf(`jobgate:{q${i}}:job:x`)),
    })),
  )
  const lagging = shards[0] as (typeof shards)[number]
  const other = shards.find((shard) => shard.master !== lagging.master)
  if (!other) throw new Error('every queue on one shard')
  const post = (queue: string) =>
    app.inject({
      method: 'POST',
      url: `/v1/queues/${queue}/jobs`,
      headers: { 'idempotency-key': 'k' },
      payload: { type: 't' },
    })
  const all = await Promise.all(shards.map((shard) => post(shard.queue)))
  t.strictSame(
    all.map((res) => `${res.statusCode} ${res.json().code ?? ''}`),
    shards.map(() => '202 '),
    'every shard confirms',
  )

  await (lagging.replicas[0] as RedisServer).pause()
  const [refused, confirmed] = await Promise.all([post(lagging.queue), post(other.queue)])
  t.equal(refused.statusCode, 503, 'the queue whose replica is frozen is refused')
  t.equal(refused.json().code, 'NOT_REPLICATED')
  t.equal(confirmed.statusCode, 202, 'a queue of another shard is not')
  t.equal(confirmed.headers['idempotent-replayed'], 'true')
  ;(lagging.replicas[0] as RedisServer).resume()
  const retried = await post(lagging.queue)
  t.equal(retried.statusCode, 202)
  t.equal(retried.json().id, all[0]?.json().id)
  const metrics = parsePrometheus((await app.inject({ method: 'GET', url: '/metrics' })).body)
  t.notOk(metrics.has('jobgate_redis_replicas_online'), 'no single replica count on a cluster')
  t.notOk(metrics.has('jobgate_redis_replicas_required'))
})

t.test(
  "on Redis Cluster a shard short of replicas refuses its own queues' writes, and only those",
  async (t) => {
    const cluster = await RedisCluster.start(3, { replicas: 1 })
    t.teardown(() => cluster.destroy())
    const { app } = await startClusterGateway(t, cluster, {
      env: { REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_TIMEOUT: '1s' },
    })
    const shards = await Promise.all(
      Array.from({ length: 24 }, async (_, i) => ({
        queue: `q${i}`,
        ...(await cluster.serversOf(`jobgate:{q${i}}:job:x`)),
      })),
    )
    const short = shards[0] as (typeof shards)[number]
    const onShort = shards.filter((shard) => shard.master === short.master)
    const elsewhere = shards.filter((shard) => shard.master !== short.master)
    t.ok(onShort.length >= 4, `${onShort.length} queues on the shard short of replicas`)
    const node = cluster.nodes[0] as RedisServer
    for (const { queue } of shards) {
      const slot = await node.ask((client) => client.cluster('KEYSLOT', `jobgate:{${queue}}:x`))
      t.equal(new QueueKeys('jobgate', queue).slot, Number(slot), `the slot of ${queue}`)
    }
    await (short.replicas[0] as RedisServer).pause()
    t.teardown(() => (short.replicas[0] as RedisServer).resume())

    // Several queues of that shard at once: their WAITs share its one connection.
    let n = 0
    const post = (queue: string) =>
      app.inject({
        method: 'POST',
        url: `/v1/queues/${queue}/jobs`,
        payload: { type: 't', payload: { n: n++ } },
      })
    const outcomes = (answers: { statusCode: number; json(): { code?: string } }[]) =>
      answers.map((res) => `${res.statusCode} ${res.statusCode === 202 ? '' : res.json().code}`)
    for (let round = 0; round < 3; round++) {
      const [refused, confirmed] = await Promise.all([
        Promise.all(onShort.map((shard) => post(shard.queue))),
        Promise.all(elsewhere.map((shard) => post(shard.queue))),
      ])
      t.strictSame(
        outcomes(refused),
        onShort.map(() => '503 NOT_REPLICATED'),
        `round ${round}: the short shard's queues are told their writes are not replicated`,
      )
      t.strictSame(
        outcomes(confirmed),
        elsewhere.map(() => '202 '),
        `round ${round}: the other shards' queues are confirmed`,
      )
    }
  },
)

t.test('SENTINEL FAILOVER under load with REDIS_WAIT_REPLICAS=1 of 1 loses no 202', async (t) => {
  const group = await RedisSentinelGroup.start()
  t.teardown(() => group.destroy())
  const gateway = await startSentinelGateway(t, group, {
    listen: true,
    env: { ...WAITING, REDIS_WAIT_TIMEOUT: '1s', RATE_LIMIT: 'off' },
  })
  const old = await group.primary()
  const load = new SubmissionLoad(gateway.url, 8, {}, 10_000)
  await until(() => load.accepted().length >= 50, 10_000)
  const primary = await group.failover()
  const switched = Date.now()
  t.ok(
    await until(
      () => load.outcomes.some((o) => o.code === 'NOT_REPLICATED' && o.started > switched + 200),
      10_000,
    ),
    'on the new primary, which has no replica yet, submissions are refused as not replicated',
  )
  // What the sentinel does some seconds later: the old primary becomes a replica of the new.
  await old.ask((client) => client.replicaof('127.0.0.1', primary.port))
  const rejoined = Date.now()
  t.ok(
    await until(() => load.outcomes.some((o) => o.status === 202 && o.started > rejoined), 10_000),
    'once it has one, 202s resume',
  )
  await sleep(300)
  const outcomes = await load.stop()
  const unexpected = outcomes.filter(
    (o: Outcome) =>
      !(
        o.status === 202 ||
        (o.status === 503 && (o.code === 'REDIS_UNAVAILABLE' || o.code === 'NOT_REPLICATED'))
      ),
  )
  t.strictSame(unexpected, [], 'only 202s and 503s')
  const accepted = outcomes.filter((o) => o.status === 202).map((o) => o.id ?? '')
  const states = await primary.ask((client) =>
    Promise.all(accepted.map((id) => client.hget(`jobgate:{q}:job:${id}`, 'state'))),
  )
  const lost = accepted.filter((_, index) => states[index] === null)
  t.comment(
    `${accepted.length} jobs accepted, ${outcomes.filter((o) => o.code === 'NOT_REPLICATED').length} NOT_REPLICATED, ${outcomes.filter((o) => o.code === 'REDIS_UNAVAILABLE').length} REDIS_UNAVAILABLE`,
  )
  t.strictSame(lost, [], 'every job that got a 202 is on the new primary')
})
