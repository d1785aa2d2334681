import t from 'tap'
import { RedisBreaker } from '../src/queue/breaker.js'
import { isUnavailableError } from '../src/queue/connection.js'

t.test('40,000 calls failing at once all settle, and open the breaker', async (t) => {
  // With opossum's latency percentiles on, every failure re-sorted every latency of the window:
  // 20,000 such failures took 7 s, 40,000 about half a minute (a gateway under a burst of slow
  // reads hung for minutes). They are off; this takes well under a second.
  t.setTimeout(15_000)
  const breaker = new RedisBreaker({
    errorThresholdPercent: 50,
    volumeThreshold: 5,
    resetMs: 2000,
    windowMs: 3000,
  })
  t.teardown(() => breaker.shutdown())
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => {
    release = resolve
  })
  const outcomes = Array.from({ length: 40_000 }, () =>
    breaker
      .run(async () => {
        await held
        throw new Error('Connection is closed.')
      })
      .then(
        () => 'answered',
        () => 'failed',
      ),
  )
  release()
  const settled = await Promise.all(outcomes)
  t.equal(settled.filter((outcome) => outcome === 'failed').length, 40_000)
  t.equal(breaker.state, 'open')
  t.equal(breaker.retryAfterSeconds(), 2, 'Retry-After: the seconds until the trial call')
})

t.test('Retry-After counts down the seconds to the trial call, at least 1', async (t) => {
  const breaker = new RedisBreaker({
    errorThresholdPercent: 50,
    volumeThreshold: 1,
    resetMs: 3500,
    windowMs: 10_000,
  })
  t.teardown(() => breaker.shutdown())
  t.equal(breaker.retryAfterSeconds(), 1, 'closed')
  await breaker.run(() => Promise.reject(new Error('Connection is closed.'))).catch(() => {})
  t.equal(breaker.state, 'open')
  t.equal(breaker.retryAfterSeconds(), 4, '3.5 s, rounded up')
  await new Promise((resolve) => setTimeout(resolve, 1600))
  t.equal(breaker.retryAfterSeconds(), 2, '1.9 s left')
})

t.test(
  'the breaker opens when the share of failures reaches the setting, 100 included',
  async (t) => {
    const fail = () => Promise.reject(new Error('Connection is closed.'))
    const answer = () => Promise.resolve('OK')
    const cases: [number, number, number][] = [
      // [setting, calls answered, calls failed]
      [50, 5, 5],
      [100, 0, 10],
      [20, 8, 2],
    ]
    for (const [percent, answered, failed] of cases) {
      const breaker = new RedisBreaker({
        errorThresholdPercent: percent,
        volumeThreshold: answered + failed,
        resetMs: 60_000,
        windowMs: 60_000,
      })
      t.teardown(() => breaker.shutdown())
      for (let i = 0; i < answered; i++) await breaker.run(answer)
      for (let i = 0; i < failed - 1; i++) await breaker.run(fail).catch(() => {})
      t.equal(breaker.state, 'closed', `${percent} %: closed one failure short`)
      await breaker.run(fail).catch(() => {})
      t.equal(breaker.state, 'open', `${percent} %: open at ${failed} of ${answered + failed}`)
    }
  },
)

t.test('which errors mean Redis cannot serve now (503), and which are bugs (500)', async (t) => {
  const reply = (message: string) => Object.assign(new Error(message), { name: 'ReplyError' })
  for (const message of [
    'LOADING Redis is loading the dataset in memory',
    'READONLY You can not write against a read only replica.',
    'MOVED 11958 127.0.0.1:7001',
    'ASK 11958 127.0.0.1:7001',
    'TRYAGAIN Multiple keys request during rehashing of slot',
    'ERR max number of clients reached',
  ]) {
    t.equal(isUnavailableError(reply(message)), true, message)
  }
  t.equal(isUnavailableError(new Error('Connection is closed.')), true, 'no reply at all')
  for (const message of [
    'ERR user_script:1: oops',
    'WRONGTYPE Operation against a key',
    'MOVEDX',
  ]) {
    t.equal(isUnavailableError(reply(message)), false, message)
  }
})
