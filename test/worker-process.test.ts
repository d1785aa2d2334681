import t from 'tap'
import { PhpWorker } from './helpers/php-worker.js'
import { RedisServer } from './helpers/redis-server.js'
import { enqueue, startStore } from './helpers/store.js'

t.test('SIGTERM arriving as Redis goes away still stops the worker cleanly', async (t) => {
  for (let round = 0; round < 3; round++) {
    const redis = await RedisServer.start()
    t.teardown(() => redis.destroy())
    const worker = new PhpWorker({ redisUrl: redis.url, args: ['--sleep=3'] })
    await worker.waitForLog((line) => line.msg === 'worker started')
    await new Promise((resolve) => setTimeout(resolve, 300)) // blocked in BLPOP by now
    worker.signal('SIGTERM')
    await redis.stop()
    const timer = setTimeout(() => worker.signal('SIGKILL'), 10_000)
    const { code, signal } = await worker.exited
    clearTimeout(timer)
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
    const timer = setTimeout(() => worker.signal('SIGKILL'), 15_000)
    const { code, signal } = await worker.exited
    clearTimeout(timer)
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
