import { connect, createServer } from 'node:net'
import t, { type Test } from 'tap'
import { startGateway } from './helpers/gateway.js'
import { until } from './helpers/load.js'
import { PhpWorker } from './helpers/php-worker.js'
import { RedisServer } from './helpers/redis-server.js'
import { enqueue, startStore } from './helpers/store.js'
import { FreezableProxy } from './helpers/tcp-proxy.js'

for (const transport of ['redis', 'http'] as const) {
  t.test(
    `an idle worker (${transport}) stops within a second of SIGTERM, whatever --sleep`,
    async (t) => {
      const { url, redis } = await startGateway(t, { listen: true })
      const worker = new PhpWorker({
        transport,
        redisUrl: redis.url,
        gatewayUrl: url,
        args: ['--sleep=20'],
      })
      t.teardown(() => worker.signal('SIGKILL'))
      await worker.waitForLog((line) => line.msg === 'worker started')
      await new Promise((resolve) => setTimeout(resolve, 1500)) // in its second wait by now
      const signalled = Date.now()
      worker.signal('SIGTERM')
      const { code, signal } = await worker.exited
      const took = Date.now() - signalled
      t.equal(signal, null, 'not killed')
      t.equal(code, 0, 'exit 0')
      t.ok(took < 2500, `stopped ${took} ms after SIGTERM, not at the end of its 20 s wait`)
      t.match(worker.lines.at(-1), { msg: 'worker stopping', reason: 'signal' })
    },
  )
}

t.test('a worker stopping hands back the wake-up token that came with the signal', async (t) => {
  const { store, client, redis } = await startStore(t)
  for (let round = 0; round < 3; round++) {
    await client.del('jobgate:{q}:wake')
    const worker = new PhpWorker({ redisUrl: redis.url, args: ['--sleep=20'] })
    t.teardown(() => worker.signal('SIGKILL'))
    await worker.waitForLog((line) => line.msg === 'worker started')
    await new Promise((resolve) => setTimeout(resolve, 300)) // blocked in BLPOP by now
    // The signal waits for the BLPOP, which the job's token ends.
    worker.signal('SIGTERM')
    const id = await enqueue(store, 'q')
    const { code } = await worker.exitedWithin(5000)
    t.equal(code, 0, `round ${round}: exit 0`)
    t.equal((await store.jobs.get('q', id))?.state, 'queued', `round ${round}: not run`)
    t.equal(
      await client.llen('jobgate:{q}:wake'),
      1,
      `round ${round}: its token is there for the next worker`,
    )
  }
})

t.test('SIGTERM arriving as Redis goes away still stops the worker cleanly', async (t) => {
  for (let round = 0; round < 3; round++) {
    const redis = await RedisServer.start()
    t.teardown(() => redis.destroy())
    const worker = new PhpWorker({ redisUrl: redis.url, args: ['--sleep=3'] })
    await worker.waitForLog((line) => line.msg === 'worker started')
    await new Promise((resolve) => setTimeout(resolve, 300)) // blocked in BLPOP by now
    worker.signal('SIGTERM')
    await redis.stop()
    const { code, signal } = await worker.exitedWithin(10_000)
    t.equal(signal, null, `round ${round}: not killed`)
    t.equal(code, 0, `round ${round}: exit 0`)
    t.match(worker.lines.at(-1), { msg: 'worker stopping', reason: 'signal' })
  }
})

t.test(
  'SIGTERM while Redis is down after a job: the worker gives up the report and stops',
  async (t) => {
    const { store, redis } = await startStore(t)
    const id = await enqueue(store, 'default', { type: 'sleep', payload: '{"ms":1500}' })
    const worker = new PhpWorker({ redisUrl: redis.url, queues: ['default'] })
    t.teardown(() => worker.signal('SIGKILL'))
    await worker.waitForLog((line) => line.msg === 'job started' && line.job_id === id)
    await redis.stop()
    // The job ends, its ack finds Redis gone, and the worker backs off, retrying it. Signal it
    // as it starts a 1.6 s wait: only a wait that the signal cuts short ends well before that.
    await worker.waitForLog(
      (line) => line.msg === 'redis unavailable, reconnecting' && line.retry_in_ms === 1600,
      15_000,
    )
    const signalled = Date.now()
    worker.signal('SIGTERM')
    const { code, signal } = await worker.exitedWithin(15_000)
    t.equal(signal, null, 'not killed')
    t.equal(code, 0, 'exit 0, as for any stop by signal')
    t.ok(Date.now() - signalled < 1000, 'the back-off wait ended at the signal')
    t.match(
      worker.lines.find((line) => line.msg === 'job outcome not recorded'),
      { level: 'warn', job_id: id, outcome: 'succeeded' },
    )
    t.match(worker.lines.at(-1), { msg: 'worker stopping', reason: 'signal' })
  },
)

t.test(
  'a Redis that starts to want a login: workers wait it out, and the job in hand runs once',
  async (t) => {
    const { store, client, redis } = await startStore(t)
    const id = await enqueue(store, 'q', { type: 'sleep', payload: '{"ms":1500}' })
    const worker = new PhpWorker({ redisUrl: redis.url, queues: ['q'] })
    t.teardown(() => worker.signal('SIGKILL'))
    await worker.waitForLog((line) => line.msg === 'job started' && line.job_id === id)
    await client.config('SET', 'requirepass', 's3cret')
    await client.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
    // Its first command after connecting, a script of more than ten parts, would be answered
    // with a protocol error rather than NOAUTH; so would a new worker's.
    const late = new PhpWorker({ redisUrl: redis.url, queues: ['q'] })
    t.teardown(() => late.signal('SIGKILL'))
    const waiting = (line: { msg: string }) => line.msg === 'redis unavailable, reconnecting'
    await worker.waitForLog(waiting, 10_000)
    await late.waitForLog(waiting, 10_000)
    await new Promise((resolve) => setTimeout(resolve, 500))
    t.equal(worker.running, true, 'the worker with the job in hand waits')
    t.equal(late.running, true, 'so does one started meanwhile')

    await client.config('SET', 'requirepass', '')
    await worker.waitForLog((line) => line.msg === 'job succeeded' && line.job_id === id, 15_000)
    t.match(
      await client.hgetall(`jobgate:{q}:job:${id}`),
      { state: 'succeeded', attempts: '1' },
      'its ack landed once Redis took it: run once',
    )
  },
)

/** A worker on queue `q` whose Redis connections pass a proxy that can freeze them. */
async function workerBehindProxy(t: Test, args: string[] = []) {
  const { store, redis } = await startStore(t)
  const proxy = await FreezableProxy.start(redis.port)
  t.teardown(() => proxy.close())
  const worker = new PhpWorker({ redisUrl: `redis://127.0.0.1:${proxy.port}`, queues: ['q'], args })
  t.teardown(() => worker.signal('SIGKILL'))
  return { store, proxy, worker }
}

t.test(
  'an ack pipelined with the next reserve waits for its replies no longer than one call would',
  async (t) => {
    const { store, proxy, worker } = await workerBehindProxy(t)
    // A first job, so that the connection has run every script (until then calls go one by one).
    await enqueue(store, 'q', { type: 'echo' })
    const slow = await enqueue(store, 'q', { type: 'sleep', payload: '{"ms":1000}' })
    const next = await enqueue(store, 'q', { type: 'echo', maxAttempts: 1 })
    const started = await worker.waitForLog(
      (line) => line.msg === 'job started' && line.job_id === slow,
    )
    proxy.freeze() // the ack and the reserve after it get no reply
    const lost = await worker.waitForLog(
      (line) => line.msg === 'redis unavailable, reconnecting',
      20_000,
    )
    const waited = Date.parse(String(lost.ts)) - Date.parse(String(started.ts)) - 1000
    // The read timeout (--sleep's slice plus 5 s): the bound --lease is checked against.
    // phpredis applies it to each reply, so a pipeline of two waited twice as long.
    t.ok(waited < 8_000, `the pipeline given up ${waited} ms after the job ended`)
    await worker.waitForLog((line) => line.msg === 'job succeeded' && line.job_id === next, 20_000)
    const states = async (id: string) => (await store.jobs.get('q', id))?.attempts
    t.equal(await states(slow), 1)
    t.equal(await states(next), 1)
  },
)

t.test(
  'an idle worker on a silent Redis connection obeys SIGTERM within its read timeout, whatever --sleep',
  async (t) => {
    const { proxy, worker } = await workerBehindProxy(t, ['--sleep=30'])
    await worker.waitForLog((line) => line.msg === 'worker started')
    await new Promise((resolve) => setTimeout(resolve, 300))
    proxy.freeze()
    await new Promise((resolve) => setTimeout(resolve, 500))
    const signalled = Date.now()
    worker.signal('SIGTERM')
    const { code } = await worker.exited
    const took = Date.now() - signalled
    t.equal(code, 0)
    // 1 s of blocking plus 5 s for the reply at most; --sleep + 5 s would be 35 s.
    t.ok(took < 9_000, `stopped ${took} ms after the signal`)
  },
)

t.test(
  'a Redis connection that goes silent without a reset: the worker gives it up after its read timeout, reconnects, and every job runs once',
  async (t) => {
    // --sleep=0.5: the read timeout is the block time (at most 1 s) plus 5 s.
    const { store, proxy, worker } = await workerBehindProxy(t)
    const stateOf = async (id: string) => (await store.jobs.get('q', id))?.state
    const reaches = async (id: string, state: string, timeoutMs: number) => {
      for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
        if ((await stateOf(id)) === state) return true
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      return false
    }
    const reconnects = () =>
      worker.lines.filter((line) => line.msg === 'redis unavailable, reconnecting').length

    // Idle: the worker waits for a wake-up on a connection that no longer carries anything.
    await worker.waitForLog((line) => line.msg === 'worker started')
    await new Promise((resolve) => setTimeout(resolve, 300))
    proxy.freeze()
    const waiting = await enqueue(store, 'q', { type: 'echo', payload: '{"n":1}' })
    await new Promise((resolve) => setTimeout(resolve, 2000))
    t.equal(await stateOf(waiting), 'queued', 'not taken while the connection is silent')
    t.ok(
      await until(() => reconnects() >= 1, 10_000),
      'the worker gives the connection up within its read timeout',
    )
    t.ok(
      await reaches(waiting, 'succeeded', 5000),
      'the job waiting meanwhile runs over the new connection',
    )

    // Mid-job: the ack (pipelined with the next reserve) goes into a connection that carries
    // nothing; it must reach Redis once, over the next connection.
    const running = await enqueue(store, 'q', { type: 'sleep', payload: '{"ms":800}' })
    await worker.waitForLog((line) => line.msg === 'job started' && line.job_id === running)
    proxy.freeze()
    const before = reconnects()
    t.ok(
      await until(() => reconnects() > before, 12_000),
      'the silent ack is given up within the read timeout',
    )
    await reaches(running, 'succeeded', 5000)
    const job = await store.jobs.get('q', running)
    t.equal(job?.state, 'succeeded', 'the ack reached Redis over the new connection')
    t.equal(job?.attempts, 1, 'one attempt: the job was not run again')
    t.same(
      job?.history.map((entry) => entry.state),
      ['queued', 'active', 'succeeded'],
      'one lease, one success',
    )
    t.equal(
      worker.lines.filter((line) => line.msg === 'job succeeded' && line.job_id === running).length,
      1,
    )
    t.equal(worker.running, true, 'the worker keeps running')
  },
)

t.test(
  'replies lost after Redis acted (the ack and the next reserve ran): the ack sent again changes nothing, the reserve sent again gets the job it leased, each job runs once',
  async (t) => {
    // The lease outlasts the wait before the worker gives up a silent connection (phpredis
    // waits its read timeout, block time + 5 s, for each reply of a pipeline): the reserve sent
    // again finds the job still under its token.
    const { store, proxy, worker } = await workerBehindProxy(t, ['--lease=15'])
    // One job first, so that Redis holds the scripts and the worker pipelines its next ack with
    // the next reserve (a NOSCRIPT answer would mean the ack never ran).
    const warmUp = await enqueue(store, 'q', { type: 'echo', payload: '{"n":0}' })
    await worker.waitForLog((line) => line.msg === 'job succeeded' && line.job_id === warmUp)
    const first = await enqueue(store, 'q', { type: 'sleep', payload: '{"ms":800}' })
    await worker.waitForLog((line) => line.msg === 'job started' && line.job_id === first)
    // Queued while the first runs: the reserve pipelined with the first's ack leases it.
    const second = await enqueue(store, 'q', { type: 'echo', payload: '{"n":2}' })
    proxy.freezeReplies()
    await worker.waitForLog(
      (line) => line.msg === 'job succeeded' && line.job_id === second,
      20_000,
    )
    const [a, b] = await Promise.all([store.jobs.get('q', first), store.jobs.get('q', second)])
    t.equal(a?.state, 'succeeded')
    t.equal(a?.attempts, 1)
    t.same(
      a?.history.map((entry) => entry.state),
      ['queued', 'active', 'succeeded'],
      'the first job succeeded once: the ack sent again changed nothing',
    )
    t.ok(
      worker.lines.some((line) => line.msg === 'redis unavailable, reconnecting'),
      'the worker gave up the connection whose replies stopped',
    )
    t.strictSame(
      worker.lines.filter((line) => line.job_id === first).map((line) => line.msg),
      ['job started', 'redis unavailable, reconnecting', 'job succeeded'],
      'the ack waits for Redis (the line names its job), sent again finds the job already succeeded and reports it as done, not lost',
    )
    t.equal(b?.state, 'succeeded')
    t.equal(
      b?.attempts,
      1,
      'the lease whose reply was lost was handed over by the reserve sent again',
    )
    t.same(
      b?.history.map((entry) => entry.state),
      ['queued', 'active', 'succeeded'],
      'one lease: it did not run out and come back',
    )
    const runs = (id: string) =>
      worker.lines.filter((line) => line.msg === 'job started' && line.job_id === id).length
    t.equal(runs(first), 1, 'the first job ran once')
    t.equal(runs(second), 1, 'the second job ran once')
  },
)

/**
 * A worker on queue `q` of a store, whose connections (to Redis, or to a gateway over HTTP)
 * pass a proxy, and the text that marks a reply carrying a lease.
 */
async function workerBehindCuttingProxy(t: Test, transport: 'redis' | 'http') {
  if (transport === 'redis') {
    // phpredis notices a connection closed under a pipeline only at its read timeout (block
    // time + 5 s): the lease outlasts that.
    const { store, proxy, worker } = await workerBehindProxy(t, ['--lease=10'])
    return { store, proxy, worker, leaseMark: 'JOB' }
  }
  const { url, redis } = await startGateway(t, { listen: true })
  const { store } = await startStore(t, {}, redis)
  const proxy = await FreezableProxy.start(Number(new URL(url).port))
  t.teardown(() => proxy.close())
  const worker = new PhpWorker({
    transport,
    gatewayUrl: `http://127.0.0.1:${proxy.port}`,
    queues: ['q'],
    args: ['--lease=10'],
  })
  t.teardown(() => worker.signal('SIGKILL'))
  return { store, proxy, worker, leaseMark: '"lease":' }
}

for (const transport of ['redis', 'http'] as const) {
  t.test(
    `a reserve's answer lost after it leased a job (${transport}): sent again with the same token, it gets that job; a job with one attempt runs once`,
    async (t) => {
      const { store, proxy, worker, leaseMark } = await workerBehindCuttingProxy(t, transport)
      const ranOnce = async (id: string, what: string) => {
        await worker.waitForLog(
          (line) => ['job succeeded', 'job failed'].includes(line.msg) && line.job_id === id,
          15_000,
        )
        const job = await store.jobs.get('q', id)
        t.equal(job?.state, 'succeeded', `${what}: succeeded`)
        t.equal(job?.attempts, 1, `${what}: its one attempt, not spent on a lease nobody held`)
        t.same(
          job?.history.map((entry) => entry.state),
          ['queued', 'active', 'succeeded'],
        )
        t.equal(
          worker.lines.filter((line) => line.msg === 'job started' && line.job_id === id).length,
          1,
          `${what}: ran once`,
        )
      }
      await worker.waitForLog((line) => line.msg === 'worker started')

      // An idle worker's reserve.
      proxy.cutReplyContaining(leaseMark)
      const alone = await enqueue(store, 'q', { type: 'echo', payload: '{"n":1}', maxAttempts: 1 })
      await ranOnce(alone, 'a job reserved by an idle worker')
      t.equal(proxy.cuts, 1, 'the answer that carried its lease was dropped')

      // The reserve that goes with an ack.
      const running = await enqueue(store, 'q', { type: 'sleep', payload: '{"ms":300}' })
      await worker.waitForLog((line) => line.msg === 'job started' && line.job_id === running)
      const next = await enqueue(store, 'q', { type: 'echo', payload: '{"n":2}', maxAttempts: 1 })
      proxy.cutReplyContaining(leaseMark)
      await ranOnce(running, 'the job whose ack went with the reserve')
      await ranOnce(next, 'the job that reserve leased')
      t.equal(proxy.cuts, 2, 'the answer that carried the ack and the next lease was dropped')
      t.equal(worker.running, true)
    },
  )
}

t.test('a worker with a broken handlers file exits 78 and says why', async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.destroy())
  const worker = new PhpWorker({
    redisUrl: redis.url,
    args: ['--handlers=/nonexistent/handlers.php'],
  })
  const { code } = await worker.exited
  t.equal(code, 78)
})

t.test(
  'a connection that answers with what it was sent (connected to itself) is an outage: the worker reconnects, then runs the job',
  async (t) => {
    const { store, redis } = await startStore(t)
    // In front of Redis, a server that first echoes every byte back, as a socket connected to
    // itself does when a reconnect gets the dead server's free port as its own end.
    let echo = true
    const server = createServer((client) => {
      client.on('error', () => undefined)
      if (echo) {
        client.on('data', (chunk) => client.write(chunk))
        return
      }
      const upstream = connect(redis.port, '127.0.0.1')
      upstream.on('error', () => undefined)
      client.pipe(upstream).pipe(client)
      client.on('close', () => upstream.destroy())
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.teardown(() => server.close())
    const address = server.address()
    const port = typeof address === 'object' && address ? address.port : 0
    const worker = new PhpWorker({ redisUrl: `redis://127.0.0.1:${port}` })
    t.teardown(() => worker.signal('SIGKILL'))

    const warning = await worker.waitForLog(
      (line) => line.msg === 'redis unavailable, reconnecting',
    )
    t.match(warning.error, /answered with the command it sent: it is connected to itself/)
    const id = await enqueue(store, 'q', { type: 'echo', payload: '{"n":1}' })
    echo = false
    await worker.waitForLog((line) => line.msg === 'job succeeded' && line.job_id === id)
    t.equal((await store.jobs.get('q', id))?.state, 'succeeded')
    t.strictSame(await worker.stop(), { code: 0, signal: null })
  },
)
