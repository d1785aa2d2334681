import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import type { ProblemError } from '../src/errors.js'
import {
  chunkFor,
  type RateLimitCount,
  type RateLimitCounter,
} from '../src/queue/rate-limit-counter.js'
import { defineScripts, queueScript } from '../src/queue/scripts.js'
import { RedisServer } from './helpers/redis-server.js'
import { startStore } from './helpers/store.js'

const NAMESPACE = 'jobgate:ratelimit:'

/** One gateway's counter: a store of its own on the shared Redis. */
async function counterOn(t: Test, redis: RedisServer): Promise<RateLimitCounter> {
  return (await startStore(t, {}, redis)).store.rateLimits
}

function take(counter: RateLimitCounter, key: string, max: number, windowMs = 60_000) {
  return new Promise<RateLimitCount>((resolve, reject) =>
    counter.incr(
      key,
      (error, result) => (error || !result ? reject(error) : resolve(result)),
      windowMs,
      max,
    ),
  )
}

async function takeCalls(client: Redis): Promise<number> {
  const stats = await client.info('commandstats')
  return Number(/cmdstat_incrby:calls=(\d+)/.exec(stats)?.[1] ?? 0)
}

t.test('a chunk is 1 % of the limit, between 1 and 100 tokens', async (t) => {
  t.strictSame([1, 10, 199, 200, 1000, 10_000, 1e7].map(chunkFor), [1, 1, 1, 2, 10, 100, 100])
})

t.test(
  'concurrent requests share one take per chunk; every token is handed out once',
  async (t) => {
    const redis = await RedisServer.start()
    t.teardown(() => redis.destroy())
    const client = redis.client()
    t.teardown(() => client.disconnect())
    const counter = await counterOn(t, redis)

    const counts = await Promise.all(
      Array.from({ length: 100 }, () => take(counter, 'produce:key:a', 1000)),
    )
    t.strictSame(
      counts.map((count) => count.current).sort((a, b) => a - b),
      Array.from({ length: 100 }, (_, i) => i + 1),
      'tokens 1..100, each once',
    )
    t.ok(
      counts.every((count) => count.ttl > 0 && count.ttl <= 60_000),
      'ttl within the window',
    )
    t.equal(await client.get(`${NAMESPACE}produce:key:a`), '100', 'Redis counted every token')
    t.equal(await takeCalls(client), 10, 'ten takes of ten tokens')
    const pttl = await client.pttl(`${NAMESPACE}produce:key:a`)
    t.ok(pttl > 0 && pttl <= 60_000, `the window expires (${pttl} ms)`)
  },
)

t.test(
  'two gateways together admit at most the limit, losing less than a chunk each',
  async (t) => {
    const redis = await RedisServer.start()
    t.teardown(() => redis.destroy())
    const gateways = [await counterOn(t, redis), await counterOn(t, redis)]
    const max = 1000
    const counts = await Promise.all(
      Array.from({ length: 1500 }, (_, i) =>
        take(gateways[i % 2] as RateLimitCounter, 'produce:key:a', max),
      ),
    )
    const tokens = counts.map((count) => count.current)
    t.equal(new Set(tokens).size, tokens.length, 'no token handed out twice')
    const admitted = tokens.filter((token) => token <= max).length
    const slack = 2 * (chunkFor(max) - 1)
    t.ok(admitted <= max && admitted >= max - slack, `${admitted} admitted of ${max}`)
    t.equal(
      (await take(gateways[0] as RateLimitCounter, 'produce:key:a', max)).current > max,
      true,
      'refused once the window is used up',
    )
  },
)

t.test('small limits are exact; a new window starts after the old one ends', async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.destroy())
  const gateways = [await counterOn(t, redis), await counterOn(t, redis)]
  const currents = []
  for (let i = 0; i < 6; i++) {
    currents.push((await take(gateways[i % 2] as RateLimitCounter, 'read:ip:1', 5, 300)).current)
  }
  t.strictSame(currents, [1, 2, 3, 4, 5, 6], 'one token per request, in order, across gateways')
  await new Promise((resolve) => setTimeout(resolve, 350))
  const next = await take(gateways[0] as RateLimitCounter, 'read:ip:1', 5, 300)
  t.equal(next.current, 1, 'counting starts over')
  t.ok(next.ttl > 200 && next.ttl <= 300, `ttl ${next.ttl}`)
  t.equal(
    (await take(gateways[1] as RateLimitCounter, 'read:ip:2', 5, 300)).current,
    1,
    'clients count apart',
  )
})

t.test('a window left by a longer limit lasts no longer than the one asked for now', async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.destroy())
  // A limit of 3 a day, then the gateways restarted with 10 a second.
  const daily = await counterOn(t, redis)
  for (let i = 0; i < 4; i++) await take(daily, 'read:key:rd', 3, 86_400_000)
  const now = await counterOn(t, redis)
  const first = await take(now, 'read:key:rd', 10, 1000)
  t.ok(first.ttl <= 1000, `the window ends within a second (${first.ttl} ms)`)
  t.ok((await redis.ask((client) => client.pttl(`${NAMESPACE}read:key:rd`))) <= 1000)
  await new Promise((resolve) => setTimeout(resolve, 1100))
  t.equal((await take(now, 'read:key:rd', 10, 1000)).current, 1, 'then a new one starts')
})

t.test(
  'a take in the last millisecond of a window still says the window has time left',
  async (t) => {
    const redis = await RedisServer.start()
    t.teardown(() => redis.destroy())
    const client = new Redis(redis.url)
    t.teardown(() => client.disconnect())
    defineScripts(client)
    // Windows of 3 ms, taken from in bursts: many takes land in a window's last millisecond,
    // where PTTL answers 0 (which the rate-limit plugin would take for a store that failed).
    const ttls = new Set<number>()
    const until = Date.now() + 500
    while (Date.now() < until) {
      const pipeline = client.pipeline()
      for (let i = 0; i < 100; i++) queueScript(pipeline, 'rate-limit', [`${NAMESPACE}x`], [3, 1])
      for (const [error, reply] of (await pipeline.exec()) ?? []) {
        if (error) throw error
        ttls.add((reply as [number, number])[1])
      }
    }
    t.strictSame([...ttls].sort(), [1, 2, 3], 'the ms left in the window, never 0')
  },
)

t.test('Redis unreachable: every waiting request gets the error', async (t) => {
  const redis = await RedisServer.start()
  t.teardown(() => redis.destroy())
  const counter = await counterOn(t, redis)
  await redis.kill()
  const results = await Promise.allSettled(
    Array.from({ length: 20 }, () => take(counter, 'produce:key:a', 10_000)),
  )
  t.strictSame(
    results.map((result) => result.status === 'rejected' && (result.reason as ProblemError).code),
    Array(20).fill('REDIS_UNAVAILABLE'),
    'all 20 fail as the store fails: 503, Redis unavailable',
  )
})

t.test(
  'many clients in a long window: the gateway holds at most 10,000, and forgets safely',
  async (t) => {
    const redis = await RedisServer.start()
    t.teardown(() => redis.destroy())
    const counter = await counterOn(t, redis)
    const day = 86_400_000
    t.equal((await take(counter, 'read:ip:first', 5, day)).current, 1)
    t.equal((await take(counter, 'read:ip:first', 5, day)).current, 2)
    // Windows of a day never end in this test: only forgetting the oldest makes room.
    for (let start = 0; start < 12_000; start += 1000) {
      await Promise.all(
        Array.from({ length: 1000 }, (_, i) => take(counter, `read:ip:10.0.${start + i}`, 5, day)),
      )
      t.ok(counter.size <= 10_000, `${start + 1000} clients seen, ${counter.size} held`)
    }
    t.ok(counter.size >= 9000, `room is made a tenth at a time (${counter.size} held)`)
    t.equal(
      (await take(counter, 'read:ip:first', 5, day)).current,
      3,
      'a forgotten client counts on from Redis: forgetting never admits more',
    )
  },
)
