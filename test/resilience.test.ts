import { rmSync } from 'node:fs'
import t from 'tap'
import { startGateway, startGatewayBehindProxy } from './helpers/gateway.js'
import { gatewayOnOwnRedis } from './helpers/gateway-process.js'
import { SubmissionLoad, sleep, until } from './helpers/load.js'
import { RedisServer } from './helpers/redis-server.js'

/**
 * The documented bound: no request waits longer than twice REDIS_COMMAND_TIMEOUT (1 s): a
 * command can wait for the pipeline ahead of it to time out before its own timeout runs.
 */
const LATENCY_BOUND_MS = 2000 + 500

t.test(
  'Redis killed under load: 503s within 1 s, recovery without a restart, no 202 lost',
  async (t) => {
    // appendfsync always: every write Redis acknowledged is on disk before the gateway answers 202.
    const { redis, gateway } = await gatewayOnOwnRedis(t, {
      redis: { args: ['--appendonly', 'yes', '--appendfsync', 'always'] },
    })

    const load = new SubmissionLoad(gateway.url, 8)
    await sleep(500)
    const killedAt = Date.now()
    await redis.kill()
    await sleep(2500)
    const restartedAt = Date.now()
    await redis.spawn()
    const recovered = await until(
      () =>
        load.outcomes.some((outcome) => outcome.started > restartedAt && outcome.status === 202),
      15_000,
    )
    await sleep(300)
    const outcomes = await load.stop()

    t.ok(recovered, '202s resume without restarting the gateway')
    t.strictSame(
      [...new Set(outcomes.map((outcome) => outcome.status))].sort(),
      [202, 503],
      'every answer is 202 or 503: no 500, no dropped connection',
    )
    const during = outcomes.filter(
      (outcome) => outcome.started >= killedAt + 1000 && outcome.finished <= restartedAt,
    )
    t.ok(during.length > 10, `requests during the outage (${during.length})`)
    t.ok(
      during.every((outcome) => outcome.status === 503 && outcome.code === 'REDIS_UNAVAILABLE'),
      'from 1 s after the kill every answer is a 503 problem',
    )
    t.ok(
      during.every((outcome) => Number(outcome.retryAfter) >= 1),
      'each with Retry-After',
    )
    const slowest = Math.max(...outcomes.map((outcome) => outcome.finished - outcome.started))
    t.ok(slowest < LATENCY_BOUND_MS, `no request hangs (slowest ${slowest} ms)`)

    const accepted = outcomes.filter((outcome) => outcome.status === 202)
    t.ok(
      accepted.some((outcome) => outcome.finished < killedAt),
      'jobs were accepted before the outage',
    )
    const client = redis.client()
    t.teardown(() => client.disconnect())
    const pipeline = client.pipeline()
    for (const outcome of accepted) pipeline.exists(`jobgate:{q}:job:${outcome.id}`)
    const found = (await pipeline.exec())?.filter(([, exists]) => exists === 1).length
    t.equal(
      found,
      accepted.length,
      `all ${accepted.length} jobs that got a 202 exist after the restart`,
    )
  },
)

t.test(
  'Redis hanging: bounded waits, then the breaker answers at once; it closes once Redis is back',
  async (t) => {
    const { redis, gateway } = await gatewayOnOwnRedis(t, { env: { BREAKER_RESET: '1s' } })

    const load = new SubmissionLoad(gateway.url, 8)
    await sleep(300)
    // Taken once Redis is stopped: a request started after it cannot have reached Redis.
    await redis.pause()
    const pausedAt = Date.now()
    const opened = await gateway.waitForLog(
      (line) => line.msg === 'Redis circuit breaker open',
      10_000,
    )
    t.ok(opened, 'the breaker opens and says so in the log')
    const ready = await fetch(`${gateway.url}/readyz`)
    t.equal(ready.status, 503)
    t.match(await ready.json(), {
      code: 'NOT_READY',
      detail: 'The circuit breaker around Redis is open: Redis was not asked.',
      checks: { breaker: 'open', redis: 'unknown' },
    })
    await sleep(1500)
    const resumedAt = Date.now()
    redis.resume()
    const recovered = await until(
      () => load.outcomes.some((outcome) => outcome.started > resumedAt && outcome.status === 202),
      15_000,
    )
    const outcomes = await load.stop()

    t.ok(recovered, '202s resume once Redis answers again')
    const whilePaused = outcomes.filter(
      (outcome) => outcome.started >= pausedAt && outcome.finished <= resumedAt,
    )
    t.strictSame(
      [...new Set(whilePaused.map((outcome) => outcome.status))],
      [503],
      'every answer while Redis hangs is a 503',
    )
    const slowest = Math.max(...whilePaused.map((outcome) => outcome.finished - outcome.started))
    t.ok(slowest < LATENCY_BOUND_MS, `bounded by the command timeout (slowest ${slowest} ms)`)
    const fastFails = whilePaused.filter((outcome) => outcome.finished - outcome.started < 100)
    t.ok(
      fastFails.length > whilePaused.length / 2,
      'once open, the breaker answers without waiting',
    )
    await gateway.waitForLog((line) => line.msg === 'Redis circuit breaker closed', 10_000)
    t.equal((await fetch(`${gateway.url}/readyz`)).status, 200)
  },
)

t.test(
  'Redis gone silent (a vanished host, no reset): 503s, then a new connection recovers',
  async (t) => {
    const { url, proxy } = await startGatewayBehindProxy(t, {
      listen: true,
      env: { BREAKER_RESET: '500ms' },
    })
    const load = new SubmissionLoad(url, 4)
    await sleep(300)
    proxy.freeze() // every open connection now carries nothing, and stays open
    const frozenAt = Date.now()
    const recovered = await until(
      () => load.outcomes.some((outcome) => outcome.started > frozenAt && outcome.status === 202),
      15_000,
    )
    const outcomes = await load.stop()
    t.ok(
      outcomes.some((outcome) => outcome.started > frozenAt && outcome.status === 503),
      'requests on the silent connection got 503',
    )
    t.ok(recovered, '202s again, over a new connection')
  },
)

t.test(
  'a long-poll connection gone silent is replaced: the next wait wakes at the next job, not at its end',
  async (t) => {
    const { url, proxy } = await startGatewayBehindProxy(t, {
      listen: true,
      env: { BREAKER_RESET: '500ms' },
    })
    const reserve = (waitMs: number) =>
      fetch(`${url}/v1/queues/q/jobs:reserve`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ worker: 'w1', wait_ms: waitMs }),
      })
    t.equal((await reserve(200)).status, 204, 'a wait opens the blocking connection')
    proxy.freeze()
    // The request path reconnects after its command timeout (503s meanwhile); then one wait
    // runs on the silent blocking connection, which ioredis ends at the block time plus 1 s.
    const frozenAt = Date.now()
    let status = 0
    while (status !== 204 && Date.now() - frozenAt < 15_000) {
      status = (await reserve(1000)).status
      if (status !== 204) await sleep(50)
    }
    t.equal(status, 204, 'waits answer again once the request path has a new connection')

    const started = Date.now()
    const waiting = reserve(8000)
    await sleep(300)
    const submitted = await fetch(`${url}/v1/queues/q/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'after-freeze' },
      body: JSON.stringify({ type: 'echo', payload: {} }),
    })
    t.equal(submitted.status, 202)
    const reserved = await waiting
    const waited = Date.now() - started
    t.equal(reserved.status, 200, 'the wait ends with the job')
    t.equal(
      ((await reserved.json()) as { job: { id: string } }).job.id,
      ((await submitted.json()) as { id: string }).id,
      'the job just submitted',
    )
    t.ok(waited < 2000, `woken by the job, not by the end of its wait (${waited} ms)`)
  },
)

t.test('a database Redis refuses: not ready, 503s, nothing written to database 0', async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.destroy())
  const { app, client } = await startGateway(t, { redis, env: { REDIS_URL: `${redis.url}/99` } })
  await sleep(300)
  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503, 'not ready')
  for (let i = 0; i < 5; i++) {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      payload: { type: 't' },
    })
    t.equal(res.statusCode, 503)
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
  }
  t.strictSame(await client.keys('*'), [], 'database 0 holds nothing')
})

t.test(
  'Redis refusing writes after a failed snapshot (MISCONF): 503, then 202 again',
  async (t) => {
    const redis = await RedisServer.start({ args: ['--save', '3600 1'] })
    t.teardown(() => redis.destroy())
    const { app, client } = await startGateway(t, { redis })
    const submit = () =>
      app.inject({ method: 'POST', url: '/v1/queues/q/jobs', payload: { type: 't' } })
    const failedSnapshot = async () => {
      await client.bgsave()
      for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(50)) {
        const info = await client.info('persistence')
        if (
          info.includes('rdb_bgsave_in_progress:0') &&
          info.includes('rdb_last_bgsave_status:err')
        ) {
          return true
        }
      }
      return false
    }
    t.equal((await submit()).statusCode, 202)
    // The snapshot cannot be written: its directory is gone.
    rmSync(redis.dir, { recursive: true, force: true })
    t.ok(await failedSnapshot(), 'the snapshot failed')
    const refused = await submit()
    t.equal(refused.statusCode, 503)
    t.match(refused.json(), { code: 'REDIS_UNAVAILABLE' })
    t.ok(Number(refused.headers['retry-after']) >= 1, 'with Retry-After')
    // The operator lets Redis take writes again (its directory cannot be given back in place).
    await client.config('SET', 'stop-writes-on-bgsave-error', 'no')
    await sleep(2100) // the breaker's reset time, in case it opened
    t.equal((await submit()).statusCode, 202, 'accepted again')
  },
)
