import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { PhpWorker } from './helpers/php-worker.js'
import { enqueue, startStore } from './helpers/store.js'

/** A handler that misbehaves must not take the worker's guarantees away from later jobs. */

async function setUp(t: Test) {
  const { store, client, redis } = await startStore(t)
  const start = (args: string[] = []) => {
    const worker = new PhpWorker({ redisUrl: redis.url, args })
    t.teardown(() => worker.signal('SIGKILL'))
    return worker
  }
  type Overrides = { maxAttempts?: number; timeoutMs?: number }
  /** A job of the `unruly` test handler, misbehaving as `misbehaviour` says. */
  const unruly = (misbehaviour: string, overrides: Overrides = {}) =>
    enqueue(store, 'q', {
      type: 'unruly',
      payload: JSON.stringify({ do: misbehaviour }),
      ...overrides,
    })
  /** A job of the demo `sleep` handler. */
  const sleeping = (ms: number, overrides: Overrides = {}) =>
    enqueue(store, 'q', { type: 'sleep', payload: JSON.stringify({ ms }), ...overrides })
  const record = (id: string) => client.hgetall(`jobgate:{q}:job:${id}`)
  return { start, unruly, sleeping, record }
}

t.test(
  'E_USER_ERROR in a handler fails the job like an exception; the worker goes on',
  async (t) => {
    const { start, unruly, sleeping, record } = await setUp(t)
    const broken = await unruly('user_error', { maxAttempts: 1 })
    const next = await sleeping(1)
    const worker = start(['--max-jobs=2'])
    t.equal((await worker.exited).code, 13, 'both jobs done, then --max-jobs')
    const dead = await record(broken)
    t.equal(dead.state, 'dead', 'not succeeded: PHP would have stopped there')
    t.strictSame(JSON.parse(dead.last_error ?? '{}').class, 'ErrorException')
    t.match(JSON.parse(dead.last_error ?? '{}').message, 'invariant broken')
    t.equal((await record(next)).state, 'succeeded')
  },
)

t.test("a handler's PHP warning is a log line that names the job; the job goes on", async (t) => {
  const { start, unruly, record } = await setUp(t)
  const id = await unruly('warning')
  const worker = start(['--max-jobs=1'])
  t.equal((await worker.exited).code, 13)
  t.match(
    worker.lines.find((line) => line.msg === 'php warning'),
    { level: 'warn', error: 'odd input', error_level: 512, job_id: id, type: 'unruly', attempt: 1 },
  )
  t.equal((await record(id)).state, 'succeeded')
})

t.test("a handler's exit() ends the worker with 1 and names the job", async (t) => {
  const { start, unruly, record } = await setUp(t)
  const id = await unruly('exit')
  const worker = start()
  t.equal((await worker.exited).code, 1, 'not 0: a supervisor must not take it for a clean stop')
  t.match(worker.lines.at(-1), {
    msg: 'worker failed',
    level: 'error',
    job_id: id,
    error_class: 'Exit',
    exit_code: 1,
  })
  t.equal((await record(id)).state, 'active', 'its lease runs out and it runs again')
})

for (const [misbehaviour, signal] of [
  ['ignore_alarm', 'SIGALRM'],
  ['block_alarm', 'SIGALRM'],
  ['sync_signals', 'all'],
] as const) {
  t.test(`a handler that did ${misbehaviour} does not take the next job its timeout`, async (t) => {
    const { start, unruly, sleeping, record } = await setUp(t)
    await unruly(misbehaviour)
    const slow = await sleeping(4000, { timeoutMs: 1500 })
    const worker = start()
    const restored = await worker.waitForLog((line) => line.msg === 'signal handler restored')
    t.match(restored, { level: 'warn', signal })
    t.strictSame(await worker.exited, { code: 15, signal: null }, 'the slow job timed out')
    t.match(await record(slow), { state: 'scheduled' })
  })
}

t.test(
  'a SIGTERM that came while a handler had signals off stops the worker after it',
  async (t) => {
    const { start, unruly, sleeping, record } = await setUp(t)
    const id = await unruly('sync_sigterm')
    const next = await sleeping(1000)
    const worker = start()
    const { code, signal } = await worker.exitedWithin(10_000)
    t.strictSame({ code, signal }, { code: 0, signal: null }, 'stopped by the signal after the job')
    t.match(
      worker.lines.find((line) => line.msg === 'worker stopping'),
      { reason: 'signal' },
    )
    t.equal((await record(id)).state, 'succeeded')
    t.equal((await record(next)).state, 'queued', 'no next job started')
  },
)

t.test('a handler that took SIGTERM over does not keep the worker from stopping', async (t) => {
  const { start, unruly, sleeping, record } = await setUp(t)
  await unruly('own_sigterm')
  const next = await sleeping(1500)
  const worker = start()
  await worker.waitForLog((line) => line.msg === 'job started' && line.job_id === next)
  worker.signal('SIGTERM')
  const { code, signal } = await worker.exitedWithin(10_000)
  t.strictSame({ code, signal }, { code: 0, signal: null }, 'stopped by the signal after the job')
  t.match(
    worker.lines.find((line) => line.msg === 'signal handler restored'),
    { signal: 'SIGTERM' },
  )
  t.equal((await record(next)).state, 'succeeded')
})

for (const signal of ['SIGQUIT', 'SIGHUP'] as const) {
  t.test(`${signal} stops the worker after its job, like SIGTERM`, async (t) => {
    const { start, sleeping, record } = await setUp(t)
    const id = await sleeping(1000)
    const worker = start()
    await worker.waitForLog((line) => line.msg === 'job started' && line.job_id === id)
    worker.signal(signal)
    const exited = await worker.exited
    t.strictSame(exited, { code: 0, signal: null }, 'not killed by it')
    t.equal((await record(id)).state, 'succeeded', 'the job finished and was acked')
    t.match(worker.lines.at(-1), { msg: 'worker stopping', reason: 'signal' })
  })
}

t.test('a handlers file PHP cannot compile exits 78 with the reason', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jobgate-handlers-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'handlers.php')
  writeFileSync(file, '<?php\nfunction twice() {}\nfunction twice() {}\nreturn [];\n')
  const { start } = await setUp(t)
  const worker = start([`--handlers=${file}`])
  t.equal((await worker.exited).code, 78)
  t.match(
    worker.lines.map((line) => line.msg).join('\n'),
    /configuration error: handlers file .*Cannot redeclare/,
  )
})

t.test('a handlers file that exits, or maps no type, exits 78 with the reason', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jobgate-handlers-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { start } = await setUp(t)
  for (const [body, reason] of [
    ['exit(0);', /handlers file .* failed to load: it ended the process \(exit\(\) or die\(\)/],
    ['return [];', /handlers file .* maps no job type/],
  ] as const) {
    const file = join(dir, 'handlers.php')
    writeFileSync(file, `<?php\n${body}\n`)
    const worker = start([`--handlers=${file}`])
    t.equal((await worker.exited).code, 78, body)
    t.match(worker.lines.map((line) => line.msg).join('\n'), reason)
  }
})
