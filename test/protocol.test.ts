import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { defineScripts, runScript } from '../src/queue/scripts.js'
import { enqueue, newJob, sleep, startStore } from './helpers/store.js'

/** The Lua protocol through the gateway's store, against a real redis-server. */

t.test('reserve leases the job: attempt counted, token, deadline, history', async (t) => {
  const { store, client } = await startStore(t)
  const id = await enqueue(store, 'q', { payload: '{"a":1}' })
  const result = await store.leases.reserve('q', 'worker-1', 30_000)
  t.ok(result.job)
  const job = result.job
  if (!job) return
  t.equal(job.id, id)
  t.equal(job.attempts, 1)
  t.equal(job.payload, '{"a":1}')
  t.match(job.leaseToken, /^[0-9a-f-]{36}$/)
  const record = await client.hgetall(`jobgate:{q}:job:${id}`)
  t.equal(record.state, 'active')
  t.equal(record.worker, 'worker-1')
  t.equal(record.lease_token, job.leaseToken)
  t.equal(Number(record.lease_deadline), job.leaseDeadline)
  t.equal(Number(record.lease_deadline) - Number(record.started_at), 30_000)
  t.equal(Number(await client.zscore('jobgate:{q}:active', id)), job.leaseDeadline)
  t.match(JSON.parse(record['h:2'] ?? '{}'), { state: 'active', attempt: 1, worker: 'worker-1' })
  t.equal(await client.llen('jobgate:{q}:ready:5'), 0)
  const empty = await store.leases.reserve('q', 'worker-1', 30_000)
  t.equal(empty.job, null)
})

t.test('ack completes once; a second ack changes nothing', async (t) => {
  const { store, client } = await startStore(t, { jobRetentionMs: 3_600_000 })
  const id = await enqueue(store, 'q')
  const { job } = await store.leases.reserve('q', 'w', 30_000)
  const first = await store.leases.ack('q', id, job?.leaseToken ?? '', '{"sent":true}')
  t.match(first, { outcome: 'done', state: 'succeeded' })
  const record = await client.hgetall(`jobgate:{q}:job:${id}`)
  t.equal(record.state, 'succeeded')
  t.equal(record.result, '{"sent":true}')
  t.equal(record.lease_token, undefined)
  t.equal(record.lease_deadline, undefined, 'the lease fields go with the lease')
  t.ok(Number(record.finished_at) > 0)
  t.equal(await client.zcard('jobgate:{q}:active'), 0)
  const ttl = await client.pttl(`jobgate:{q}:job:${id}`)
  t.ok(ttl > 3_500_000 && ttl <= 3_600_000, 'the finished record expires after the retention')
  t.equal(await client.hget('jobgate:{q}:stats', 'succeeded'), '1')

  const again = await store.leases.ack('q', id, job?.leaseToken ?? '', null)
  t.strictSame(
    again,
    { outcome: 'lease_lost', state: 'succeeded', endedAs: 'succeeded' },
    'sent again, the ack hears that a call with its token ended the lease',
  )
  t.equal(await client.hget('jobgate:{q}:stats', 'succeeded'), '1')
  t.strictSame(await store.leases.ack('q', 'nope', 'x', null), { outcome: 'not_found' })
})

t.test('a stale lease changes nothing after the job was re-leased', async (t) => {
  const { store, client } = await startStore(t)
  const id = await enqueue(store, 'q')
  const first = (await store.leases.reserve('q', 'slow', 100)).job
  await sleep(150)
  const second = (await store.leases.reserve('q', 'fast', 30_000)).job
  t.equal(second?.id, id, 'the expired lease is reclaimed and re-leased')
  t.equal(second?.attempts, 2)
  t.not(second?.leaseToken, first?.leaseToken)
  const before = await client.hgetall(`jobgate:{q}:job:${id}`)

  for (const [label, outcome] of [
    ['ack', await store.leases.ack('q', id, first?.leaseToken ?? '', '{}')],
    [
      'fail',
      await store.leases.fail('q', id, first?.leaseToken ?? '', { message: 'x', class: 'E' }),
    ],
    [
      'retry',
      await store.leases.retry('q', id, first?.leaseToken ?? '', { message: 'x', class: 'E' }, 0),
    ],
    [
      'heartbeat',
      await store.leases.heartbeat('q', id, first?.leaseToken ?? '', 60_000, '{"p":1}'),
    ],
  ] as const) {
    t.strictSame(outcome, { outcome: 'lease_lost', state: 'active' }, `stale ${label}`)
  }
  t.strictSame(await client.hgetall(`jobgate:{q}:job:${id}`), before, 'the record is untouched')
  t.match(await store.leases.ack('q', id, second?.leaseToken ?? '', null), { outcome: 'done' })
  const history = (await store.jobs.get('q', id))?.history.map((entry) => entry.state)
  t.strictSame(history, ['queued', 'active', 'queued', 'active', 'succeeded'])
})

t.test('heartbeat extends the lease and records progress', async (t) => {
  const { store, client } = await startStore(t)
  const id = await enqueue(store, 'q')
  const job = (await store.leases.reserve('q', 'w', 200)).job
  await sleep(120)
  const beat = await store.leases.heartbeat('q', id, job?.leaseToken ?? '', 200, '{"done":50}')
  t.match(beat, { outcome: 'done' })
  await sleep(120)
  t.equal(
    (await store.leases.reserve('q', 'other', 1000)).job,
    null,
    'not reclaimed: the lease was extended',
  )
  t.equal(await client.hget(`jobgate:{q}:job:${id}`, 'progress'), '{"done":50}')
  await sleep(150)
  t.equal(
    (await store.leases.reserve('q', 'other', 1000)).job?.id,
    id,
    'reclaimed once heartbeats stop',
  )
})

t.test('a result over 1 MiB or progress over 64 KiB is refused and changes nothing', async (t) => {
  const { store, client } = await startStore(t)
  const id = await enqueue(store, 'q')
  const job = (await store.leases.reserve('q', 'w', 30_000)).job
  const token = job?.leaseToken ?? ''
  const before = await client.hgetall(`jobgate:{q}:job:${id}`)
  const text = (bytes: number) => JSON.stringify('x'.repeat(bytes - 2))

  t.strictSame(await store.leases.heartbeat('q', id, token, 60_000, text(65_537)), {
    outcome: 'too_large',
    field: 'progress',
    maxBytes: 65_536,
  })
  t.strictSame(await store.leases.ack('q', id, token, text(1_048_577)), {
    outcome: 'too_large',
    field: 'result',
    maxBytes: 1_048_576,
  })
  t.strictSame(await client.hgetall(`jobgate:{q}:job:${id}`), before, 'the record is untouched')
  t.equal(await client.zscore('jobgate:{q}:active', id), String(job?.leaseDeadline))

  t.match(await store.leases.heartbeat('q', id, token, 60_000, text(65_536)), { outcome: 'done' })
  t.equal((await client.hget(`jobgate:{q}:job:${id}`, 'progress'))?.length, 65_536)
  t.match(await store.leases.ack('q', id, token, text(1_048_576)), {
    outcome: 'done',
    state: 'succeeded',
  })
  t.equal((await client.hget(`jobgate:{q}:job:${id}`, 'result'))?.length, 1_048_576)
})

t.test("the PHP worker's copy of the result limit is the ack script's", async (t) => {
  const script = readFileSync(new URL('../lua/ack-4.lua', import.meta.url), 'utf8')
  const inLua = /^local RESULT_MAX_BYTES = (\d+)$/m.exec(script)?.[1]
  const inPhp = execFileSync(
    'php',
    [
      '-r',
      'require $argv[1]; echo Jobgate\\Worker\\Transport\\ProtocolLimits::RESULT_MAX_BYTES;',
      fileURLToPath(new URL('../php-worker/autoload.php', import.meta.url)),
    ],
    { encoding: 'utf8' },
  )
  t.equal(inLua, '1048576')
  t.equal(inPhp, inLua)
})

t.test('a lease that ran out on the last attempt makes the job dead', async (t) => {
  const { store, client } = await startStore(t)
  const id = await enqueue(store, 'q', { maxAttempts: 2 })
  await store.leases.reserve('q', 'crashy', 50)
  await sleep(80)
  t.equal((await store.leases.reserve('q', 'crashy', 50)).job?.attempts, 2)
  await sleep(80)
  t.equal((await store.leases.reserve('q', 'crashy', 50)).job, null)
  const job = await store.jobs.get('q', id)
  t.equal(job?.state, 'dead')
  t.equal(job?.attempts, 2)
  t.match(JSON.parse(job?.lastError ?? '{}'), {
    class: 'LeaseExpired',
    message: /lease expired: worker crashy/,
  })
  t.ok((await client.zscore('jobgate:{q}:dead', id)) !== null)
})

t.test('fail is permanent: dead at once with the error', async (t) => {
  const { store, client } = await startStore(t, { deadRetentionMs: 3_600_000 })
  const id = await enqueue(store, 'q', { maxAttempts: 5 })
  const job = (await store.leases.reserve('q', 'w', 30_000)).job
  const outcome = await store.leases.fail('q', id, job?.leaseToken ?? '', {
    message: 'bad address',
    class: 'InvalidArgument',
  })
  t.match(outcome, { outcome: 'done', state: 'dead' })
  const record = await store.jobs.get('q', id)
  t.equal(record?.state, 'dead')
  t.equal(record?.attempts, 1)
  t.match(JSON.parse(record?.lastError ?? '{}'), {
    message: 'bad address',
    class: 'InvalidArgument',
  })
  t.ok((await client.pttl(`jobgate:{q}:job:${id}`)) > 3_500_000)
  t.equal(await client.zcard('jobgate:{q}:dead'), 1)
  t.equal(await client.zcard('jobgate:{q}:active'), 0)
})

t.test('retry: exponential back-off, capped, then dead on the last attempt', async (t) => {
  const { store, client } = await startStore(t)
  const id = await enqueue(store, 'q', {
    maxAttempts: 4,
    backoff: { type: 'exponential', delayMs: 100, maxDelayMs: 300, jitter: false },
  })
  const delays: number[] = []
  for (let attempt = 1; attempt <= 3; attempt++) {
    const job = await store.leases.reserveWaiting('q', 'w', 30_000, 2000)
    t.equal(job?.attempts, attempt)
    const outcome = await store.leases.retry(
      'q',
      id,
      job?.leaseToken ?? '',
      { message: `boom ${attempt}`, class: 'E' },
      null,
    )
    t.match(outcome, { outcome: 'done', state: 'scheduled' })
    const record = await client.hgetall(`jobgate:{q}:job:${id}`)
    delays.push(Number(record.run_at) - Number(record.updated_at))
    t.equal(Number(await client.zscore('jobgate:{q}:scheduled', id)), Number(record.run_at))
  }
  t.strictSame(delays, [100, 200, 300], '100 × 2^(n−1), capped at 300')
  const last = await store.leases.reserveWaiting('q', 'w', 30_000, 2000)
  t.equal(last?.attempts, 4)
  t.match(
    await store.leases.retry(
      'q',
      id,
      last?.leaseToken ?? '',
      { message: 'boom 4', class: 'E' },
      null,
    ),
    {
      outcome: 'done',
      state: 'dead',
    },
  )
  const job = await store.jobs.get('q', id)
  t.strictSame(
    job?.history
      .filter((entry) => entry.state === 'scheduled')
      .map((entry) => [entry.attempt, entry.delay_ms, entry.error]),
    [
      [1, 100, 'boom 1'],
      [2, 200, 'boom 2'],
      [3, 300, 'boom 3'],
    ],
  )
  t.match(JSON.parse(job?.lastError ?? '{}'), { message: 'boom 4' })
  t.equal(await client.hget('jobgate:{q}:stats', 'retried'), '3')
})

t.test(
  'retry: jitter stays in the upper half; a requested delay wins; 0 re-queues now',
  async (t) => {
    const { store, client } = await startStore(t)
    const id = await enqueue(store, 'q', {
      maxAttempts: 50,
      backoff: { type: 'fixed', delayMs: 1000, maxDelayMs: 1000, jitter: true },
    })
    const error = { message: 'x', class: 'E' }
    let job = (await store.leases.reserve('q', 'w', 30_000)).job
    const runAgainNow = async () => {
      await client.zrem('jobgate:{q}:scheduled', id)
      await client.hset(`jobgate:{q}:job:${id}`, 'state', 'queued')
      await client.lpush('jobgate:{q}:ready:5', id)
      job = (await store.leases.reserve('q', 'w', 30_000)).job
    }
    const delayOfLastRetry = async () => {
      const record = await client.hgetall(`jobgate:{q}:job:${id}`)
      return Number(record.run_at) - Number(record.updated_at)
    }
    const seen = new Set<number>()
    for (let i = 0; i < 20; i++) {
      await store.leases.retry('q', id, job?.leaseToken ?? '', error, null)
      const delay = await delayOfLastRetry()
      t.ok(delay >= 500 && delay <= 1000, `jittered delay ${delay} in [500, 1000]`)
      seen.add(delay)
      await runAgainNow()
    }
    t.ok(seen.size > 1, 'jitter varies')

    await store.leases.retry('q', id, job?.leaseToken ?? '', error, 5000)
    t.equal(await delayOfLastRetry(), 5000, 'the requested delay')
    await runAgainNow()

    t.match(await store.leases.retry('q', id, job?.leaseToken ?? '', error, 0), { state: 'queued' })
    t.strictSame(await client.lrange('jobgate:{q}:ready:5', 0, -1), [id])
    t.equal(await client.zcard('jobgate:{q}:scheduled'), 0)
  },
)

t.test('priority 9 first, then submission order within a priority', async (t) => {
  const { store } = await startStore(t)
  const low1 = await enqueue(store, 'q', { priority: 1 })
  const mid = await enqueue(store, 'q', { priority: 5 })
  const high = await enqueue(store, 'q', { priority: 9 })
  const low2 = await enqueue(store, 'q', { priority: 1 })
  const order: string[] = []
  for (let i = 0; i < 4; i++)
    order.push((await store.leases.reserve('q', 'w', 30_000)).job?.id ?? '')
  t.strictSame(order, [high, mid, low1, low2])
})

t.test('scheduled jobs wait for their time; the empty reply says how long', async (t) => {
  const { store } = await startStore(t)
  const id = await enqueue(store, 'q', { delayMs: 300 })
  const early = await store.leases.reserve('q', 'w', 30_000)
  t.equal(early.job, null)
  t.ok(!early.job && early.waitMs > 200 && early.waitMs <= 300, 'wait hint ≈ time until due')
  await sleep(320)
  const due = await store.leases.reserve('q', 'w', 30_000)
  t.equal(due.job?.id, id)
  const history = (await store.jobs.get('q', id))?.history.map((entry) => entry.state)
  t.strictSame(history, ['scheduled', 'queued', 'active'])
})

t.test('a job past its TTL is never delivered and shows expired', async (t) => {
  const { store, client } = await startStore(t)
  const queued = await enqueue(store, 'q', { ttlMs: 50 })
  const scheduled = await enqueue(store, 'q', { ttlMs: 70, delayMs: 60 })
  const fresh = await enqueue(store, 'q')
  await sleep(100)
  t.equal((await store.leases.reserve('q', 'w', 30_000)).job?.id, fresh)
  t.equal((await store.leases.reserve('q', 'w', 30_000)).job, null)
  t.equal((await store.jobs.get('q', queued))?.state, 'expired')
  t.equal((await store.jobs.get('q', scheduled))?.state, 'expired')
  t.equal(await client.hget('jobgate:{q}:stats', 'expired'), '2')
})

t.test('cancel: queued and scheduled jobs only; canceled jobs are never delivered', async (t) => {
  const { store, client } = await startStore(t)
  const queued = await enqueue(store, 'q')
  const scheduled = await enqueue(store, 'q', { delayMs: 50 })
  const running = await enqueue(store, 'q')
  t.match(await store.jobs.cancel('q', queued), { outcome: 'canceled', job: { state: 'canceled' } })
  t.match(await store.jobs.cancel('q', scheduled), { outcome: 'canceled' })
  t.equal(await client.zcard('jobgate:{q}:scheduled'), 0)
  t.equal((await store.leases.reserve('q', 'w', 30_000)).job?.id, running)
  t.strictSame(await store.jobs.cancel('q', running), {
    outcome: 'not_cancelable',
    state: 'active',
  })
  t.strictSame(await store.jobs.cancel('q', queued), {
    outcome: 'not_cancelable',
    state: 'canceled',
  })
  t.strictSame(await store.jobs.cancel('q', 'missing'), { outcome: 'not_found' })
  await sleep(80)
  t.equal((await store.leases.reserve('q', 'w', 30_000)).job, null)
})

t.test(
  'dead letters: list newest first, redrive with attempts reset, purge frees the key',
  async (t) => {
    const { store, client } = await startStore(t)
    const ids: string[] = []
    for (let i = 0; i < 3; i++) {
      const id = await enqueue(store, 'q', {
        maxAttempts: 1,
        idempotency: { key: `k${i}`, fingerprint: 'f' },
      })
      const job = (await store.leases.reserve('q', 'w', 30_000)).job
      await store.leases.fail('q', id, job?.leaseToken ?? '', { message: `e${i}`, class: 'E' })
      ids.push(id)
      await sleep(2)
    }
    const page = await store.deadLetters.list('q', 0, 2)
    t.equal(page.total, 3)
    t.strictSame(
      page.jobs.map((job) => job.id),
      [ids[2], ids[1]],
    )

    t.match(await store.deadLetters.redrive('q', ids[0] ?? ''), {
      outcome: 'done',
      count: 1,
      job: { id: ids[0], state: 'queued', attempts: 0 },
    })
    const redriven = await store.jobs.get('q', ids[0] ?? '')
    t.equal(redriven?.state, 'queued')
    t.equal(redriven?.attempts, 0)
    t.equal(await client.pttl(`jobgate:{q}:job:${ids[0]}`), -1, 'no longer expires')
    t.match(redriven?.history.at(-1), { state: 'queued', reason: 'redrive' })
    t.equal((await store.leases.reserve('q', 'w', 30_000)).job?.id, ids[0])
    t.strictSame(await store.deadLetters.redrive('q', ids[0] ?? ''), {
      outcome: 'not_dead',
      state: 'active',
    })

    t.strictSame(await store.deadLetters.purge('q', ids[1] ?? ''), { outcome: 'done', count: 1 })
    t.equal(await client.exists(`jobgate:{q}:job:${ids[1]}`), 0)
    t.equal(
      await client.exists('jobgate:{q}:idem:anonymous:k1'),
      0,
      'its idempotency record is gone',
    )
    t.equal(await client.exists('jobgate:{q}:idem:anonymous:k2'), 1)
    t.equal(await store.deadLetters.purgeAll('q'), 1)
    t.equal(await client.zcard('jobgate:{q}:dead'), 0)
    t.strictSame(await store.deadLetters.purge('q', 'missing'), { outcome: 'not_found' })
  },
)

t.test('redrive all moves every dead job, with a wake-up for each', async (t) => {
  const { store, client } = await startStore(t)
  for (let i = 0; i < 150; i++) await deadJob(store)
  await client.del('jobgate:{q}:wake')
  t.equal(await store.deadLetters.redriveAll('q'), 150)
  t.equal(await client.zcard('jobgate:{q}:dead'), 0)
  t.equal(await client.llen('jobgate:{q}:ready:5'), 150)
  t.equal(await client.llen('jobgate:{q}:wake'), 150, 'one wake-up per redriven job, however many')
})

t.test('wake-up tokens nobody takes are capped: past 2,000 the list is cut to 1,000', async (t) => {
  const { store, client } = await startStore(t)
  // Busy workers reserve without waiting, so they take no token: only the cap bounds the list.
  const ids = await Promise.all(Array.from({ length: 2500 }, () => enqueue(store, 'q')))
  t.equal(new Set(ids).size, 2500)
  t.equal(await client.llen('jobgate:{q}:ready:5'), 2500, 'every job is ready')
  t.equal(await client.llen('jobgate:{q}:wake'), 1000 + 499, 'cut to 1,000 at 2,001, then 499 more')
  // A push of many at once (here a resume) is cut the same way, and keeps at least what it pushed.
  t.ok(await store.queues.setPaused('q', true))
  t.ok(await store.queues.setPaused('q', false))
  t.equal(
    await client.llen('jobgate:{q}:wake'),
    1000,
    'resume pushed 1,000 (its own cap), then the cut',
  )
})

t.test('a reserve wakes a worker for each job it made ready but the one it took', async (t) => {
  const { store, client } = await startStore(t)
  // 50 leases run out and 100 scheduled jobs fall due: the next reserve makes 150 ready.
  // Leases long enough that none runs out while the 50 are taken, one by one.
  for (let i = 0; i < 50; i++) await enqueue(store, 'r')
  for (let i = 0; i < 50; i++) await store.leases.reserve('r', 'w', 1000)
  for (let i = 0; i < 100; i++) await enqueue(store, 'r', { runAt: Date.now() + 1000 })
  await client.del('jobgate:{r}:wake')
  await sleep(1100)
  t.ok((await store.leases.reserve('r', 'w', 30_000)).job, 'it takes one')
  t.equal(await client.llen('jobgate:{r}:wake'), 149, 'and wakes a worker for each of the rest')
})

/** Fails a fresh job with one attempt: it is dead. */
async function deadJob(
  store: Awaited<ReturnType<typeof startStore>>['store'],
  overrides: Parameters<typeof enqueue>[2] = {},
): Promise<string> {
  const id = await enqueue(store, 'q', { maxAttempts: 1, ...overrides })
  const job = (await store.leases.reserve('q', 'w', 30_000)).job
  await store.leases.fail('q', id, job?.leaseToken ?? '', { message: 'e', class: 'E' })
  return id
}

for (const action of ['purgeAll', 'redriveAll'] as const) {
  t.test(`${action} takes the jobs dead when it began, not those dying meanwhile`, async (t) => {
    const { store, client } = await startStore(t)
    const before = await deadJob(store)
    const later = await deadJob(store)
    // As if it died while the series of calls ran: after its first call's time.
    await client.zadd('jobgate:{q}:dead', String(Date.now() + 60_000), later)
    t.equal(await store.deadLetters[action]('q'), 1)
    t.strictSame(
      await client.zrange('jobgate:{q}:dead', '0', '-1'),
      [later],
      'the later one is left',
    )
    t.equal(
      (await store.jobs.get('q', before))?.state,
      action === 'purgeAll' ? undefined : 'queued',
    )
  })
}

t.test('redrive all while workers fail what it redrives: each job once, and it ends', async (t) => {
  const { store } = await startStore(t)
  const dead: string[] = []
  for (let i = 0; i < 2500; i++) dead.push(await deadJob(store))
  let redriving = true
  const failer = (async () => {
    let failed = 0
    while (redriving) {
      const job = (await store.leases.reserve('q', 'w', 30_000)).job
      if (job === null) continue
      await store.leases.fail('q', job.id, job.leaseToken, { message: 'again', class: 'E' })
      failed++
    }
    return failed
  })()
  const redriven = await store.deadLetters.redriveAll('q')
  redriving = false
  t.ok((await failer) > 0, 'the worker failed some redriven jobs while the redrive ran')
  t.equal(redriven, 2500, 'every job dead at the start, once')
  for (const id of dead) {
    const history = (await store.jobs.get('q', id))?.history ?? []
    const redrives = history.filter((entry) => entry.reason === 'redrive').length
    if (redrives !== 1) t.fail(`${id} was redriven ${redrives} times`)
  }
})

for (const action of ['purgeAll', 'redriveAll'] as const) {
  t.test(`${action} goes on past a full batch of entries whose records expired`, async (t) => {
    const { store, client } = await startStore(t)
    await deadJob(store)
    await deadJob(store)
    // A thousand entries older than those, whose records expired (the batch is 1,000).
    const stale = Array.from({ length: 1000 }, (_, i) => [i + 1, `gone-${i}`]).flat()
    await client.zadd('jobgate:{q}:dead', ...stale)
    t.equal(await store.deadLetters[action]('q'), 2, 'both live dead jobs')
    t.equal(await client.zcard('jobgate:{q}:dead'), 0, 'the stale entries are gone too')
  })
}

for (const action of ['purge', 'redrive'] as const) {
  t.test(`${action} of one id whose record expired drops its dead-set entry`, async (t) => {
    const { store, client } = await startStore(t)
    const id = await deadJob(store)
    // Its record expired before its entry was pruned (DEAD_RETENTION raised since it died).
    await client.del(`jobgate:{q}:job:${id}`)
    t.equal((await store.queues.counts('q')).dead, 1, 'counted dead until then')
    t.strictSame(await store.deadLetters[action]('q', id), { outcome: 'not_found' })
    t.equal(await client.zcard('jobgate:{q}:dead'), 0, 'the entry is gone')
    t.equal((await store.queues.counts('q')).dead, 0)
    t.strictSame(await store.queues.delete('q'), { outcome: 'deleted' }, 'the queue can go')
  })
}

t.test('purge keeps an idempotency record that now names a newer job', async (t) => {
  const { store, client } = await startStore(t)
  const old = await deadJob(store, { idempotency: { key: 'k', fingerprint: 'first' } })
  // The key's record expires (it lives 24 h, a dead job 7 days); a new job takes the key.
  await client.del('jobgate:{q}:idem:anonymous:k')
  const idempotency = { key: 'k', fingerprint: 'second' }
  const newer = await enqueue(store, 'q', { idempotency })
  t.strictSame(await store.deadLetters.purge('q', old), { outcome: 'done', count: 1 })
  t.equal(await client.get('jobgate:{q}:idem:anonymous:k'), `second:${newer}`)
  const again = await store.jobs.enqueue(newJob('q', { idempotency }))
  t.match(again, { outcome: 'replayed', job: { id: newer } }, 'the newer job is still protected')
})

t.test('a fingerprint with colons still deduplicates', async (t) => {
  const { store } = await startStore(t)
  const idempotency = { key: 'k', fingerprint: 'sha256:ab:cd' }
  const first = await enqueue(store, 'q', { idempotency })
  t.match(await store.jobs.enqueue(newJob('q', { idempotency })), {
    outcome: 'replayed',
    job: { id: first },
  })
  t.match(
    await store.jobs.enqueue(newJob('q', { idempotency: { key: 'k', fingerprint: 'sha256:ab' } })),
    { outcome: 'conflict' },
  )
})

t.test('past its TTL a job is not started again; a redrive lifts the TTL', async (t) => {
  const { store } = await startStore(t)
  const dead = await deadJob(store, { ttlMs: 100 })
  const retried = await enqueue(store, 'q', { ttlMs: 100 })
  const lease = (await store.leases.reserve('q', 'w', 30_000)).job
  await store.leases.retry('q', retried, lease?.leaseToken ?? '', { message: 'e', class: 'E' }, 0)
  await sleep(150)
  t.equal((await store.leases.reserve('q', 'w', 30_000)).job, null)
  t.equal((await store.jobs.get('q', retried))?.state, 'expired', 'not retried past its TTL')
  t.match(await store.deadLetters.redrive('q', dead), {
    outcome: 'done',
    count: 1,
    job: { expiresAt: null },
  })
  t.equal((await store.leases.reserve('q', 'w', 30_000)).job?.id, dead, 'the redriven job runs')
  t.equal((await store.jobs.get('q', dead))?.expiresAt ?? null, null)
})

t.test("a TTL that ends before run_at is refused on Redis's clock, writing nothing", async (t) => {
  const { store, client } = await startStore(t)
  const [seconds, micros] = await client.time()
  const redisNow = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
  // Due 60 s ahead on Redis's clock, expiring 50 s after it is stored: refused while Redis's
  // clock is within 10 s of redisNow (a loaded machine takes far less between the calls).
  const job = newJob('q', { runAt: redisNow + 60_000, ttlMs: 50_000 })
  const result = await store.jobs.enqueue(job)
  t.equal(result.outcome, 'expires_before_due')
  const dueInMs = result.outcome === 'expires_before_due' ? result.dueInMs : 0
  t.ok(dueInMs > 50_000 && dueInMs <= 60_000, `due in ${dueInMs} ms`)
  t.strictSame(await client.keys('*'), [], 'no job, no registry entry')
  const batch = await store.jobs.enqueueMany('q', [job, newJob('q', { runAt: redisNow + 60_000 })])
  t.strictSame(
    batch.map((item) => item.outcome),
    ['expires_before_due', 'created'],
  )
  t.ok(await client.sismember('jobgate:queues', 'q'), 'registered once a job is accepted')
})

t.test(
  'scripts called with an argument they do not know refuse it and change nothing',
  async (t) => {
    const { store, client } = await startStore(t)
    defineScripts(client)
    await enqueue(store, 'q', { delayMs: 60_000 })
    const before = await client.keys('*')
    const prefix = 'jobgate:{q}:'
    const cancel = (state: string, batch: number) =>
      runScript(
        client,
        'cancel-waiting',
        [`${prefix}scheduled`, `${prefix}events`, `${prefix}stats`],
        [prefix, state, batch, 60_000, 1000],
      )
    await t.rejects(
      cancel('active', 10),
      /bad argument ARGV\[2\]: must be one of queued, scheduled/,
    )
    await t.rejects(
      cancel('scheduled', 0),
      /bad argument ARGV\[3\]: must be a decimal integer from 1/,
    )
    await t.rejects(
      runScript(
        client,
        'pause',
        [
          `${prefix}paused`,
          `${prefix}wake`,
          `${prefix}scheduled`,
          `${prefix}active`,
          `${prefix}stats`,
        ],
        [prefix, 'halt'],
      ),
      /bad argument ARGV\[2\]: must be one of pause, resume/,
    )
    t.strictSame(await client.keys('*'), before)
    t.equal(await client.zcard(`${prefix}scheduled`), 1, 'the scheduled job is still there')
  },
)

t.test('a lease that ran out past the job TTL: expired, not queued again', async (t) => {
  const { store, client } = await startStore(t)
  const id = await enqueue(store, 'q', { ttlMs: 150 })
  await store.leases.reserve('q', 'crashy', 100)
  const other = await enqueue(store, 'q', { priority: 9 })
  await sleep(200)
  const tokens = await client.llen('jobgate:{q}:wake')
  t.equal((await store.leases.reserve('q', 'w', 30_000)).job?.id, other)
  const job = await store.jobs.get('q', id)
  t.equal(job?.state, 'expired')
  t.strictSame(
    job?.history.map((entry) => entry.state),
    ['queued', 'active', 'expired'],
  )
  t.match(job?.history.at(-1), {
    state: 'expired',
    attempt: 1,
    error: /lease expired: worker crashy/,
  })
  t.match(JSON.parse(job?.lastError ?? '{}'), { class: 'LeaseExpired' })
  t.equal(await client.llen('jobgate:{q}:ready:5'), 0)
  t.equal(await client.llen('jobgate:{q}:wake'), tokens, 'no wake-up for a job that cannot run')
  t.match(await client.hgetall('jobgate:{q}:stats'), { reclaimed: '1', expired: '1' })
})

t.test('a retry that would run at or past the job TTL: expired at once', async (t) => {
  const { store, client } = await startStore(t)
  const id = await enqueue(store, 'q', { ttlMs: 60_000 })
  const lease = (await store.leases.reserve('q', 'w', 30_000)).job
  const error = { message: 'later', class: 'E' }
  const expired = await store.leases.retry('q', id, lease?.leaseToken ?? '', error, 120_000)
  t.match(expired, { outcome: 'done', state: 'expired', at: Number })
  const job = await store.jobs.get('q', id)
  t.equal(job?.state, 'expired')
  t.match(job?.history.at(-1), { state: 'expired', attempt: 1, error: 'later' })
  t.equal(await client.zcard('jobgate:{q}:scheduled'), 0, 'not scheduled to expire later')
  t.ok((await client.pttl(`jobgate:{q}:job:${id}`)) > 86_000_000, 'kept for the job retention')
  t.match(await client.hgetall('jobgate:{q}:stats'), { expired: '1' })
  t.notOk((await client.hgetall('jobgate:{q}:stats')).retried, 'not counted retried')
  t.strictSame(
    await store.leases.retry('q', id, lease?.leaseToken ?? '', error, 120_000),
    { outcome: 'lease_lost', state: 'expired', endedAs: 'expired' },
    'the same call sent again says what it did',
  )

  const soon = await enqueue(store, 'q', { ttlMs: 60_000 })
  const next = (await store.leases.reserve('q', 'w', 30_000)).job
  t.match(
    await store.leases.retry('q', soon, next?.leaseToken ?? '', error, 1000),
    { outcome: 'done', state: 'scheduled' },
    'a retry due before the TTL is scheduled as before',
  )
})

t.test(
  'Redis out of memory: reserve leases nothing (no job runs that could not be acked)',
  async (t) => {
    const { store, client } = await startStore(t)
    const id = await enqueue(store, 'q')
    await enqueue(store, 'q', { delayMs: 10 })
    await sleep(20)
    await client.config('SET', 'maxmemory-policy', 'noeviction')
    await client.config('SET', 'maxmemory', '1')
    t.teardown(() => client.config('SET', 'maxmemory', '0'))
    await t.rejects(store.leases.reserve('q', 'w', 30_000), { code: 'REDIS_UNAVAILABLE' })
    await client.config('SET', 'maxmemory', '0')
    t.equal((await store.jobs.get('q', id))?.state, 'queued', 'still waiting, attempt not counted')
    t.equal(await client.zcard('jobgate:{q}:active'), 0)
    t.equal(await client.llen('jobgate:{q}:ready:5'), 1, 'popped nothing')
    t.equal(await client.zcard('jobgate:{q}:scheduled'), 1, 'promoted nothing')
    const lease = (await store.leases.reserve('q', 'w', 30_000)).job
    t.equal(lease?.id, id, 'leased once Redis has memory again')
    t.equal(await client.get(`jobgate:{q}:lease:${lease?.leaseToken}`), id)
    t.ok((await store.leases.reserve('q', 'w', 30_000)).job, 'then the one that became due')
    const none = await store.leases.reserve('q', 'w', 30_000, 'token-nothing-left')
    t.equal(none.job, null)
    t.equal(
      await client.exists('jobgate:{q}:lease:token-nothing-left'),
      0,
      'no key left by an empty reply',
    )
  },
)

t.test('leases that ran out come back earliest deadline first', async (t) => {
  const { store } = await startStore(t)
  const ids = [await enqueue(store, 'q'), await enqueue(store, 'q'), await enqueue(store, 'q')]
  await store.leases.reserve('q', 'crashy', 100)
  await sleep(5)
  await store.leases.reserve('q', 'crashy', 100)
  await sleep(150)
  const order = []
  for (let i = 0; i < 3; i++) order.push((await store.leases.reserve('q', 'w', 30_000)).job?.id)
  t.strictSame(order, ids, 'the earlier deadline first, both before the job that waited')
})

t.test("a queue lost with Redis's data is registered again by its next job", async (t) => {
  const { store, client } = await startStore(t)
  await enqueue(store, 'q')
  t.strictSame(await store.queues.names(), ['q'])
  await client.flushall() // a restart without persistence, or a failover to a replica behind
  await enqueue(store, 'q')
  await sleep(1100)
  await enqueue(store, 'q')
  t.strictSame(await store.queues.names(), ['q'], 'registered again within a second')
})

t.test('counts per state and the oldest queued job', async (t) => {
  const { store } = await startStore(t)
  const first = await enqueue(store, 'q')
  await sleep(5)
  await enqueue(store, 'q') // the same list: the oldest is at its far end
  await enqueue(store, 'q', { priority: 9 })
  await enqueue(store, 'q', { delayMs: 60_000 })
  const active = await enqueue(store, 'q', { priority: 9 })
  await store.leases.reserve('q', 'w', 30_000)
  const counts = await store.queues.counts('q')
  t.match(counts, { name: 'q', queued: 3, scheduled: 1, active: 1, dead: 0 })
  t.equal(counts.oldestQueuedAt, (await store.jobs.get('q', first))?.createdAt)
  t.equal(counts.totals.enqueued, 5)
  t.equal((counts.thisMinute.enqueued ?? 0) + (counts.lastMinute.enqueued ?? 0), 5)
  t.strictSame(await store.queues.names(), ['q'])
  t.equal(await store.queues.exists('q'), true)
  t.equal(await store.queues.exists('nope'), false)
  t.ok(active)
})

t.test(
  'a reserve stopped by its skip limit still wakes a worker per job it made ready',
  async (t) => {
    const { store, client } = await startStore(t)
    const due = await enqueue(store, 'q', { delayMs: 20 })
    // 1,000 leftover entries ahead of it (their records gone): the limit of skips per call.
    await client.rpush(
      'jobgate:{q}:ready:5',
      ...Array.from({ length: 1000 }, (_, i) => `gone-${i}`),
    )
    await sleep(40)
    await client.del('jobgate:{q}:wake')
    t.strictSame(await store.leases.reserve('q', 'w', 30_000), { job: null, waitMs: 0 })
    t.equal(await client.llen('jobgate:{q}:wake'), 1, 'one wake token for the job it made ready')
    t.equal((await store.leases.reserve('q', 'w', 30_000)).job?.id, due, 'the next call takes it')
  },
)

t.test('reserve leaves a wake token for every job it made ready but did not take', async (t) => {
  const { store, client } = await startStore(t)
  const urgent = await enqueue(store, 'q', { priority: 9 })
  await enqueue(store, 'q', { delayMs: 20 })
  await enqueue(store, 'q', { delayMs: 20 })
  await sleep(40)
  await client.del('jobgate:{q}:wake')
  t.equal(
    (await store.leases.reserve('q', 'w', 30_000)).job?.id,
    urgent,
    'it took a job waiting already',
  )
  t.equal(await client.llen('jobgate:{q}:wake'), 2, 'both promoted jobs wake a worker')

  await enqueue(store, 'r', { delayMs: 20 })
  await enqueue(store, 'r', { delayMs: 20 })
  await sleep(40)
  await client.del('jobgate:{r}:wake')
  await store.leases.reserve('r', 'w', 30_000)
  t.equal(await client.llen('jobgate:{r}:wake'), 1, 'it took one of the two it promoted')
})

t.test('an idle worker blocks on the wake list and wakes at once for a new job', async (t) => {
  const { store, client } = await startStore(t)
  const started = Date.now()
  const waiting = store.leases.reserveWaiting('q', 'w', 30_000, 5000)
  await sleep(200)
  const id = await enqueue(store, 'q')
  const job = await waiting
  t.equal(job?.id, id)
  t.ok(Date.now() - started < 1000, 'woken by the enqueue, not by the timeout')
  t.equal(await client.llen('jobgate:{q}:wake'), 0)
  const none = await store.leases.reserveWaiting('q', 'w', 30_000, 300)
  t.equal(none, null, 'no job within the wait')
})

t.test('a blocked worker wakes for a delayed job when it becomes due', async (t) => {
  const { store } = await startStore(t)
  const waiting = store.leases.reserveWaiting('q', 'w', 30_000, 5000)
  await sleep(50)
  const id = await enqueue(store, 'q', { delayMs: 400 })
  const started = Date.now()
  const job = await waiting
  const waited = Date.now() - started
  t.equal(job?.id, id)
  t.ok(waited >= 350 && waited < 1000, `delivered when due (${waited} ms)`)
})

t.test('readers of every queue at once share one reading', async (t) => {
  const { store, client } = await startStore(t)
  for (const queue of ['a', 'b', 'c']) await enqueue(store, queue)
  await store.queues.allCounts() // the counts script loaded: every call below is one EVALSHA
  const before = await client.info('commandstats')
  const calls = (info: string) => Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0)
  const readings = await Promise.all(Array.from({ length: 20 }, () => store.queues.allCounts()))
  const after = await client.info('commandstats')
  t.strictSame(
    readings.map((counts) => counts.map((queue) => queue.name).join()),
    Array.from({ length: 20 }, () => 'a,b,c'),
  )
  t.equal(calls(after) - calls(before), 3, 'one counts script per queue, not per reader')
  t.equal((await store.queues.allCounts())[0]?.queued, 1, 'a later reader reads anew')
})

t.test('reserve takes every priority in turn, 9 down to 0', async (t) => {
  const { store } = await startStore(t)
  const ids: string[] = []
  for (let priority = 0; priority <= 9; priority++)
    ids.push(await enqueue(store, 'q', { priority }))
  const order: string[] = []
  for (let i = 0; i < 10; i++)
    order.push((await store.leases.reserve('q', 'w', 30_000)).job?.id ?? '')
  t.strictSame(order, ids.toReversed())
})

t.test('an empty reserve says how long until a lease runs out', async (t) => {
  const { store } = await startStore(t)
  await enqueue(store, 'q')
  await store.leases.reserve('q', 'w', 500)
  const empty = await store.leases.reserve('q', 'w', 30_000)
  t.equal(empty.job, null)
  const waitMs = empty.job === null ? empty.waitMs : -1
  t.ok(waitMs > 0 && waitMs <= 500, `wait ${waitMs} ms: the lease may come back then`)
})

t.test('records of finished jobs expire: dead by retry or by lease, canceled', async (t) => {
  const hour = 3_600_000
  const { store, client } = await startStore(t, { jobRetentionMs: hour, deadRetentionMs: 2 * hour })
  const ttl = async (id: string) => client.pttl(`jobgate:{q}:job:${id}`)
  const retried = await enqueue(store, 'q', { maxAttempts: 1 })
  const lease = (await store.leases.reserve('q', 'w', 30_000)).job?.leaseToken ?? ''
  await store.leases.retry('q', retried, lease, { message: 'e', class: 'E' }, null)
  const lost = await enqueue(store, 'q', { maxAttempts: 1 })
  await store.leases.reserve('q', 'w', 50)
  await sleep(80)
  await store.leases.reserve('q', 'w', 30_000) // reclaims the lease that ran out: dead
  const canceled = await enqueue(store, 'q')
  await store.jobs.cancel('q', canceled)
  for (const [label, id, retention] of [
    ['dead on its last retry', retried, 2 * hour],
    ['dead when its last lease ran out', lost, 2 * hour],
    ['canceled', canceled, hour],
  ] as const) {
    const left = await ttl(id)
    t.ok(left > retention - 60_000 && left <= retention, `${label}: expires (${left} ms)`)
  }
})

t.test('a retry with no delay wakes a waiting worker', async (t) => {
  const { store, client } = await startStore(t)
  const id = await enqueue(store, 'q')
  const job = (await store.leases.reserve('q', 'w', 30_000)).job
  await client.del('jobgate:{q}:wake')
  await store.leases.retry('q', id, job?.leaseToken ?? '', { message: 'e', class: 'E' }, 0)
  t.equal(await client.llen('jobgate:{q}:wake'), 1)
})

t.test('the statistics count dead, redriven, purged and reclaimed jobs', async (t) => {
  const { store, client } = await startStore(t)
  const id = await deadJob(store)
  await store.deadLetters.redrive('q', id)
  const again = (await store.leases.reserve('q', 'w', 30_000)).job
  await store.leases.fail('q', id, again?.leaseToken ?? '', { message: 'e', class: 'E' })
  await store.deadLetters.purge('q', id)
  await enqueue(store, 'q', { maxAttempts: 2 })
  await store.leases.reserve('q', 'w', 50)
  await sleep(80)
  await store.leases.reserve('q', 'w', 30_000)
  t.match(await client.hgetall('jobgate:{q}:stats'), {
    dead: '2',
    redriven: '1',
    purged: '1',
    reclaimed: '1',
  })
})

t.test('an idempotency key whose job record expired is free again', async (t) => {
  const { store, client } = await startStore(t)
  const idempotency = { key: 'k', fingerprint: 'f' }
  const first = await enqueue(store, 'q', { idempotency })
  await client.del(`jobgate:{q}:job:${first}`) // its retention ran out before the key's
  const again = await store.jobs.enqueue(newJob('q', { idempotency }))
  t.match(again, { outcome: 'created' })
  t.not(again.outcome === 'created' ? again.job.id : first, first)
})

t.test(
  'a reserve sent again with its token gets the job the first leased, lease renewed, attempt counted once',
  async (t) => {
    const { store, client } = await startStore(t)
    const first = await enqueue(store, 'q')
    const second = await enqueue(store, 'q')
    const token = 'a1b2c3d4e5f60718293a4b5c6d7e8f90'
    const leased = (await store.leases.reserve('q', 'w', 2000, token)).job
    t.equal(leased?.id, first)
    t.equal(leased?.leaseToken, token)
    t.equal(await client.get(`jobgate:{q}:lease:${token}`), first, 'the token names the job')
    const ttl = await client.pttl(`jobgate:{q}:lease:${token}`)
    t.ok(ttl > 1900 && ttl <= 2000, `the token's key lasts as long as the lease (${ttl} ms)`)
    const historyBefore = await client.hget(`jobgate:{q}:job:${first}`, 'hn')
    const eventsBefore = await client.xlen('jobgate:{q}:events')

    await sleep(20)
    const again = (await store.leases.reserve('q', 'w', 30_000, token)).job
    t.equal(again?.id, first, 'the same job, not the next one')
    t.equal(again?.attempts, 1, 'its attempt is counted once')
    t.equal(again?.leaseToken, token)
    t.ok((again?.leaseDeadline ?? 0) > (leased?.leaseDeadline ?? 0) + 20_000, 'the lease renewed')
    const record = await client.hgetall(`jobgate:{q}:job:${first}`)
    t.equal(record.state, 'active')
    t.equal(Number(record.lease_deadline), again?.leaseDeadline)
    t.equal(Number(await client.zscore('jobgate:{q}:active', first)), again?.leaseDeadline)
    t.equal(record.hn, historyBefore, 'no history entry: nothing happened to the job')
    t.equal(await client.xlen('jobgate:{q}:events'), eventsBefore, 'and no event')
    t.equal(await client.lindex('jobgate:{q}:ready:5', -1), second, 'the next job still waits')
    t.ok((await client.pttl(`jobgate:{q}:lease:${token}`)) > 29_000, "the token's key renewed")

    const before = await client.hgetall(`jobgate:{q}:job:${first}`)
    await t.rejects(
      store.leases.reserve('q', 'other-worker', 30_000, token),
      { code: 'LEASE_TOKEN_IN_USE', status: 409 },
      "another worker with the token of a live lease is refused: it would take that lease's lookup",
    )
    t.strictSame(await client.hgetall(`jobgate:{q}:job:${first}`), before, 'the lease untouched')
    t.equal(await client.get(`jobgate:{q}:lease:${token}`), first, 'the token still names it')
    t.equal(await client.lindex('jobgate:{q}:ready:5', -1), second, 'no job leased')
    t.equal(await client.zcard('jobgate:{q}:active'), 1)
    const replayed = (await store.leases.reserve('q', 'w', 30_000, token)).job
    t.equal(replayed?.id, first, "the token's own worker still gets its job back")

    await store.leases.ack('q', first, token, null)
    const afterwards = (await store.leases.reserve('q', 'other-worker', 30_000, token)).job
    t.equal(afterwards?.id, second, 'once that lease ended, the token may lease anew')
  },
)

t.test('ack, fail and retry delete the lease token; the token then leases anew', async (t) => {
  const { store, client } = await startStore(t)
  const ids = [await enqueue(store, 'q'), await enqueue(store, 'q'), await enqueue(store, 'q')]
  const ends = [
    (id: string, token: string) => store.leases.ack('q', id, token, null),
    (id: string, token: string) => store.leases.fail('q', id, token, { message: 'no', class: 'E' }),
    (id: string, token: string) =>
      store.leases.retry('q', id, token, { message: 'later', class: 'E' }, 60_000),
  ]
  for (const [index, end] of ends.entries()) {
    const token = `token-of-end-number-${index}`
    const job = (await store.leases.reserve('q', 'w', 30_000, token)).job
    t.equal(job?.id, ids[index])
    t.match(await end(ids[index] ?? '', token), { outcome: 'done' })
    t.equal(await client.exists(`jobgate:{q}:lease:${token}`), 0, `end ${index}: the key is gone`)
  }
  const fourth = await enqueue(store, 'q')
  const reused = (await store.leases.reserve('q', 'w', 30_000, 'token-of-end-number-0')).job
  t.equal(reused?.id, fourth, 'a token whose lease ended leases the next job')
  t.equal(reused?.attempts, 1)
})

t.test('a token whose job was reclaimed leases anew, not the job it lost', async (t) => {
  const { store, client } = await startStore(t)
  const id = await enqueue(store, 'q', { maxAttempts: 5 })
  const token = 'token-whose-lease-runs-out'
  t.equal((await store.leases.reserve('q', 'w', 50, token)).job?.id, id)
  await sleep(80)
  const taken = (await store.leases.reserve('q', 'w2', 30_000)).job
  t.equal(taken?.id, id, 'reclaimed and leased to another worker')
  t.equal(taken?.attempts, 2)
  const again = await store.leases.reserve('q', 'w', 30_000, token)
  t.equal(again.job, null, 'the old token finds nothing: the job is leased under another')
  t.equal(await client.hget(`jobgate:{q}:job:${id}`, 'lease_token'), taken?.leaseToken)
})

t.test(
  'a reservation handed back: on a paused queue too, and to two long polls of one token alike',
  async (t) => {
    const { store } = await startStore(t)
    const id = await enqueue(store, 'q')
    const token = 'token-of-a-paused-queue-reserve'
    t.equal((await store.leases.reserve('q', 'w', 30_000, token)).job?.id, id)
    await store.queues.setPaused('q', true)
    t.equal(
      (await store.leases.reserve('q', 'w', 30_000, token)).job?.id,
      id,
      'leased before the pause: still the worker’s',
    )
    t.equal((await store.leases.reserve('q', 'w', 30_000)).job, null, 'a new reservation waits')
    await store.queues.setPaused('q', false)

    const polls = [1, 2].map(() =>
      store.leases.reserveWaiting('q', 'w', 30_000, 3000, undefined, 'one-token-two-polls'),
    )
    await sleep(100)
    const next = await enqueue(store, 'q')
    const [a, b] = await Promise.all(polls)
    t.equal(a?.id, next)
    t.equal(b?.id, next, 'the same reservation: send one at a time (documented)')
    t.equal(a?.attempts, 1)
  },
)

t.test("LEASE_LOST says when this token's own call ended the lease, and only then", async (t) => {
  const { store, client } = await startStore(t)
  const id = await enqueue(store, 'q', { maxAttempts: 5 })
  const first = (await store.leases.reserve('q', 'a', 30_000)).job
  const error = { message: 'later', class: 'E' }
  t.match(await store.leases.retry('q', id, first?.leaseToken ?? '', error, 0), {
    outcome: 'done',
    state: 'queued',
  })
  const second = (await store.leases.reserve('q', 'b', 30_000)).job
  t.equal(second?.id, id, 're-leased to another worker')
  t.strictSame(
    await store.leases.retry('q', id, first?.leaseToken ?? '', error, 0),
    { outcome: 'lease_lost', state: 'active', endedAs: 'queued' },
    'the first retry sent again: it hears what it did, though the job ran on',
  )
  t.strictSame(
    await store.leases.ack('q', id, 'a-token-that-never-held-it', null),
    { outcome: 'lease_lost', state: 'active' },
    'a stranger hears nothing more',
  )
  t.strictSame(
    await store.leases.heartbeat('q', id, first?.leaseToken ?? '', 30_000, null),
    { outcome: 'lease_lost', state: 'active' },
    "a heartbeat never: the job is not the first lease's any more",
  )
  t.match(await store.leases.fail('q', id, second?.leaseToken ?? '', error), { state: 'dead' })
  t.equal(await client.hget(`jobgate:{q}:job:${id}`, 'ended_lease'), `dead:${second?.leaseToken}`)
  t.strictSame(
    await store.leases.retry('q', id, first?.leaseToken ?? '', error, 0),
    {
      outcome: 'lease_lost',
      state: 'dead',
    },
    'a later end by another lease takes its place',
  )
  t.strictSame(await store.leases.fail('q', id, second?.leaseToken ?? '', error), {
    outcome: 'lease_lost',
    state: 'dead',
    endedAs: 'dead',
  })
})

t.test('a token with colons is told apart whole in ended_lease', async (t) => {
  const { store } = await startStore(t)
  const id = await enqueue(store, 'q')
  const token = 'worker:7:reservation:42'
  t.equal((await store.leases.reserve('q', 'w', 30_000, token)).job?.id, id)
  t.match(await store.leases.ack('q', id, token, null), { outcome: 'done' })
  t.strictSame(await store.leases.ack('q', id, token, null), {
    outcome: 'lease_lost',
    state: 'succeeded',
    endedAs: 'succeeded',
  })
  t.strictSame(await store.leases.ack('q', id, 'reservation:42', null), {
    outcome: 'lease_lost',
    state: 'succeeded',
  })
})

t.test('a job keeps its latest 1,000 history entries, however often it is redriven', async (t) => {
  const { store, client } = await startStore(t)
  const id = await enqueue(store, 'q', { maxAttempts: 1 })
  const key = `jobgate:{q}:job:${id}`
  const error = { message: 'no', class: 'E' }
  const lease = async () => (await store.leases.reserve('q', 'w', 30_000)).job?.leaseToken ?? ''
  // 1 entry at enqueue, 3 per round (active, dead, queued): past the cap after 333 rounds.
  const outcomes = new Set<string>()
  for (let round = 0; round < 340; round++) {
    outcomes.add((await store.leases.fail('q', id, await lease(), error)).outcome)
    outcomes.add((await store.deadLetters.redrive('q', id)).outcome)
  }
  t.strictSame([...outcomes], ['done'], 'every fail and redrive went through')
  // Its last attempt: the retry makes it dead.
  t.match(await store.leases.retry('q', id, await lease(), error, 0), { state: 'dead' })
  t.equal((await store.deadLetters.redrive('q', id)).outcome, 'done')
  t.equal((await store.leases.ack('q', id, await lease(), null)).outcome, 'done')
  const total = 1 + 340 * 3 + 5
  t.equal(Number(await client.hget(key, 'hn')), total, 'every transition is counted')
  const kept = (await client.hkeys(key)).filter((field) => field.startsWith('h:'))
  t.strictSame(
    kept.map((field) => Number(field.slice(2))).sort((a, b) => a - b),
    Array.from({ length: 1000 }, (_, i) => total - 999 + i),
    'the latest 1,000 entries, none older',
  )
  const history = (await store.jobs.get('q', id))?.history ?? []
  t.equal(history.length, 1000)
  t.strictSame(
    history.slice(-5).map((entry) => entry.state),
    ['active', 'dead', 'queued', 'active', 'succeeded'],
  )
})

t.test('release undoes a lease nobody received: queued in front, attempt uncounted', async (t) => {
  const { store, client } = await startStore(t)
  const first = await enqueue(store, 'q')
  const second = await enqueue(store, 'q')
  const job = (await store.leases.reserve('q', 'w', 30_000, 'token-nobody-got')).job
  if (!job) throw new Error('nothing leased')
  t.equal(job.id, first)
  const tokens = await client.llen('jobgate:{q}:wake')
  t.equal(await store.leases.release('q', job), true)
  const key = `jobgate:{q}:job:${first}`
  const record = await client.hgetall(key)
  t.match(record, { state: 'queued', attempts: '0' })
  for (const field of ['lease_token', 'lease_deadline', 'started_at', 'worker']) {
    t.equal(record[field], undefined, `${field} goes: the job was never started`)
  }
  t.strictSame(JSON.parse(record[`h:${record.hn}`] ?? '{}'), {
    at: JSON.parse(record[`h:${record.hn}`] ?? '{}').at,
    state: 'queued',
    attempt: 1,
    reason: 'released',
  })
  t.equal(await client.zcard('jobgate:{q}:active'), 0)
  t.equal(await client.exists('jobgate:{q}:lease:token-nobody-got'), 0)
  t.equal(await client.hget('jobgate:{q}:stats', 'released'), '1', 'counted')
  t.equal(await client.llen('jobgate:{q}:wake'), tokens + 1, 'an idle worker is woken for it')
  const events = await client.xrevrange('jobgate:{q}:events', '+', '-', 'COUNT', 1)
  t.match(events[0]?.[1], ['job', first, 'state', 'queued'])

  t.equal(await store.leases.release('q', job), false, 'released once only')
  const again = (await store.leases.reserve('q', 'w2', 30_000)).job
  t.equal(again?.id, first, 'back in front of the job that waited behind it')
  t.equal(again?.attempts, 1)
  t.equal((await store.leases.reserve('q', 'w2', 30_000)).job?.id, second)
  t.equal(await store.leases.release('q', job), false, "another worker's lease is kept")
  t.equal(await client.hget(key, 'lease_token'), again?.leaseToken)
})

t.test('release keeps a lease a reserve sent again with its token received since', async (t) => {
  const { store, client } = await startStore(t)
  const id = await enqueue(store, 'q', { maxAttempts: 5 })
  const token = 'token-sent-twice'
  // Sent together, the two run within the same millisecond: the same deadline but for the rule.
  const [first, again] = await Promise.all([
    store.leases.reserve('q', 'w', 30_000, token),
    store.leases.reserve('q', 'w', 30_000, token),
  ])
  const [lost, received] = [first.job, again.job]
  if (!lost || !received) throw new Error('nothing leased')
  t.equal(received.id, id)
  t.ok(received.leaseDeadline > lost.leaseDeadline, 'each grant of a token has its own deadline')
  t.equal(await store.leases.release('q', lost), false, 'the first grant is not undone')
  t.match(await client.hgetall(`jobgate:{q}:job:${id}`), {
    state: 'active',
    attempts: '1',
    lease_token: token,
  })
  t.match(await store.leases.ack('q', id, token, null), { outcome: 'done', state: 'succeeded' })

  const later = await enqueue(store, 'q', { maxAttempts: 5 })
  const retried = (await store.leases.reserve('q', 'w', 30_000)).job
  if (!retried) throw new Error('nothing leased')
  await store.leases.retry('q', later, retried.leaseToken, { message: 'x', class: 'E' }, 0)
  const second = (await store.leases.reserve('q', 'w', 30_000)).job
  if (!second) throw new Error('nothing leased')
  t.equal(second.attempts, 2)
  t.equal(await store.leases.release('q', second), true)
  t.match(
    await client.hgetall(`jobgate:{q}:job:${later}`),
    { state: 'queued', attempts: '1', worker: 'w' },
    'a later attempt is undone alone; the record keeps what the earlier one left',
  )
  t.ok(await client.hget(`jobgate:{q}:job:${later}`, 'started_at'))
})
