import t from 'tap'
import { PhpWorker } from './helpers/php-worker.js'
import { RedisServer } from './helpers/redis-server.js'

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
