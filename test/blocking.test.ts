import t, { type Test } from 'tap'
import { BlockingClients } from '../src/queue/blocking.js'
import { createRedisClient, waitUntilReady } from '../src/queue/connection.js'
import { sleep } from './helpers/load.js'
import { RedisServer } from './helpers/redis-server.js'

/** The pool of connections that long polls block on, against the races of leaving mid-wait. */

/** A pool of `size` connections on a private Redis, and a plain client of that Redis. */
async function startPool(t: Test, size: number) {
  const redis = await RedisServer.start()
  t.teardown(() => redis.destroy())
  const source = createRedisClient({ url: redis.url })
  t.teardown(() => source.disconnect())
  t.ok(await waitUntilReady(source, 5000))
  const plain = redis.client()
  t.teardown(() => plain.disconnect())
  const pool = new BlockingClients(source, size)
  t.teardown(() => pool.close())
  return { pool, plain }
}

t.test('a wait cut off while its wake-up token is on the way loses no token', async (t) => {
  const { pool, plain } = await startPool(t, 2)
  const rounds = 100
  let lost = 0
  for (let round = 0; round < rounds; round++) {
    await plain.del('wake')
    const leaving = new AbortController()
    const waiting = pool.waitForWake('wake', 5000, leaving.signal)
    while (!((await plain.client('LIST')) as string).includes('cmd=blpop')) await sleep(2)
    // The token and the waiter's leaving reach Redis in either order, or together.
    const pushed = plain.lpush('wake', '1')
    if (round % 2) leaving.abort()
    else setImmediate(() => leaving.abort())
    await pushed
    await waiting
    await sleep(20)
    if ((await plain.llen('wake')) === 0) lost++
  }
  t.equal(lost, 0, `a token is on the list after each of ${rounds} rounds`)
})

t.test('a waiter that left while its connection was being made does not block', async (t) => {
  const { pool, plain } = await startPool(t, 1)

  // Redis answers nothing for 600 ms: the pool's first connection is not ready before then.
  await plain.client('PAUSE', 600, 'ALL')
  const leaving = new AbortController()
  const started = Date.now()
  const waiting = pool.waitForWake('wake', 10_000, leaving.signal)
  await sleep(100)
  leaving.abort()
  await waiting
  const tookMs = Date.now() - started
  t.ok(tookMs < 3000, `the wait ended once the connection was made (${tookMs} ms), not at 10 s`)

  const next = pool.waitForWake('wake', 5000)
  while (!((await plain.client('LIST')) as string).includes('cmd=blpop')) await sleep(5)
  await plain.lpush('wake', '1')
  await next
  t.equal(
    await plain.llen('wake'),
    0,
    'the connection went back to the pool: the next wait took it',
  )
})

t.test('an interrupt ends a wait whose new connection is still connecting, at once', async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.destroy())
  const source = createRedisClient({ url: redis.url })
  t.teardown(() => source.disconnect())
  t.ok(await waitUntilReady(source, 5000))
  const connecting = new BlockingClients(source, 2)
  t.teardown(() => connecting.close())
  await redis.pause() // a new connection opens its socket, but never hears Redis ready
  t.teardown(() => redis.resume())
  const waiting = connecting.waitForWake('wake', 5000, new AbortController().signal)
  await sleep(200)
  const interruptedAt = Date.now()
  connecting.interrupt()
  await waiting.catch(() => null)
  const took = Date.now() - interruptedAt
  // Well before the 2 s a connection is given to become ready, which it used to wait out.
  t.ok(took < 1200, `the wait ended ${took} ms after the interrupt`)
})
