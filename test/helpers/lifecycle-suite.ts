import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { startClusterGateway, startGateway } from './gateway.js'
import { PhpWorker, type WorkerOptions } from './php-worker.js'
import { parsePrometheus } from './prometheus.js'
import type { RedisCluster } from './redis-cluster.js'

/**
 * The job lifecycle with real PHP worker processes, run once per transport (and on Redis
 * Cluster): the gateway takes the jobs over HTTP, workers consume them.
 */

export interface LifecycleTarget {
  transport: 'redis' | 'http'
  /** A Redis Cluster shared by the suite (flushed before each test); else a private redis-server per test. */
  cluster?: RedisCluster
}

interface JobStatus {
  id: string
  state: string
  attempts: number
  result: unknown
  progress?: unknown
  worker: string | null
  run_at: string
  started_at: string | null
  last_error: { message: string; class: string } | null
  history: {
    state: string
    at: string
    attempt?: number
    error?: string
    delay_ms?: number
    worker?: string
  }[]
}

class Harness {
  readonly workers: PhpWorker[] = []
  readonly dir = mkdtempSync(join(tmpdir(), 'jobgate-lifecycle-'))
  readonly recordFile = join(this.dir, 'runs.log')

  constructor(
    readonly gateway: { url: string },
    private readonly target: LifecycleTarget,
    private readonly workerArgs: string[],
    private readonly redisUrl: string,
  ) {
    writeFileSync(this.recordFile, '')
  }

  worker(args: string[] = [], queues = ['q']): PhpWorker {
    const options: WorkerOptions = {
      queues,
      transport: this.target.transport,
      redisUrl: this.redisUrl,
      gatewayUrl: this.gateway.url,
      args: [...this.workerArgs, ...args],
      env: { JOBGATE_RECORD: this.recordFile },
    }
    const worker = new PhpWorker(options)
    this.workers.push(worker)
    return worker
  }

  async submit(body: object, queue = 'q'): Promise<string> {
    const res = await fetch(`${this.gateway.url}/v1/queues/${queue}/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    if (res.status !== 202) throw new Error(`submit: ${res.status} ${await res.text()}`)
    return ((await res.json()) as { id: string }).id
  }

  async status(id: string, queue = 'q'): Promise<JobStatus> {
    const res = await fetch(`${this.gateway.url}/v1/queues/${queue}/jobs/${id}`)
    return (await res.json()) as JobStatus
  }

  async waitFor(id: string, states: string[], timeoutMs = 20_000, queue = 'q'): Promise<JobStatus> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const status = await this.status(id, queue)
      if (states.includes(status.state)) return status
      if (Date.now() > deadline) {
        throw new Error(
          `job ${id} is ${status.state}, not ${states.join('/')}: ${JSON.stringify(status)}`,
        )
      }
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }

  /** Lines `<job id> <attempt> <pid>` written by the `record` test handler, in run order. */
  runs(): { id: string; attempt: number; pid: number }[] {
    return readFileSync(this.recordFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [id = '', attempt = '0', pid = '0'] = line.split(' ')
        return { id, attempt: Number(attempt), pid: Number(pid) }
      })
  }

  async close(): Promise<void> {
    await Promise.all(
      this.workers.map((worker) => (worker.running ? worker.stop() : worker.exited)),
    )
    rmSync(this.dir, { recursive: true, force: true })
  }
}

async function harness(t: Test, target: LifecycleTarget): Promise<Harness> {
  let h: Harness
  if (target.cluster) {
    await target.cluster.flush()
    const gateway = await startClusterGateway(t, target.cluster, { listen: true })
    // An HTTP worker reaches the cluster through the gateway; --cluster is for Redis workers.
    const args = target.transport === 'redis' ? [`--cluster=${target.cluster.seeds}`] : []
    h = new Harness(gateway, target, args, '')
  } else {
    const gateway = await startGateway(t, { listen: true })
    h = new Harness(gateway, target, [], gateway.redis.url)
  }
  t.teardown(() => h.close())
  return h
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export function lifecycleSuite(t: Test, target: LifecycleTarget): void {
  t.test('a posted job is run by a PHP worker and succeeds with its result', async (t) => {
    const h = await harness(t, target)
    h.worker()
    const posted = Date.now()
    const id = await h.submit({ type: 'echo', payload: { to: 'ada@example.com', n: 7 } })
    const done = await h.waitFor(id, ['succeeded'])
    t.comment(`submit → succeeded observed after ${Date.now() - posted} ms (polling every 25 ms)`)
    t.strictSame(done.result, { to: 'ada@example.com', n: 7 })
    t.equal(done.attempts, 1)
    t.match(done.worker, /:\d+$/)
    t.strictSame(
      done.history.map((entry) => entry.state),
      ['queued', 'active', 'succeeded'],
    )
  })

  t.test('a throwing handler is retried with growing back-off, then dead', async (t) => {
    const h = await harness(t, target)
    const worker = h.worker()
    const id = await h.submit({
      type: 'flaky',
      payload: { succeed_on: 99 },
      max_attempts: 3,
      backoff: { type: 'exponential', delay_ms: 100, jitter: false },
    })
    const dead = await h.waitFor(id, ['dead'])
    t.equal(dead.attempts, 3)
    t.match(dead.last_error, { message: /attempt 3/, class: 'RuntimeException' })
    const retries = dead.history.filter((entry) => entry.state === 'scheduled')
    t.strictSame(
      retries.map((entry) => [entry.attempt, entry.delay_ms]),
      [
        [1, 100],
        [2, 200],
      ],
      'each attempt is in the history with its growing back-off',
    )
    t.strictSame(
      dead.history.filter((entry) => entry.state === 'active').map((entry) => entry.attempt),
      [1, 2, 3],
    )
    await worker.waitForLog((line) => line.msg === 'job dead' && line.job_id === id)

    const recovers = await h.submit({
      type: 'flaky',
      payload: { succeed_on: 2 },
      backoff: { delay_ms: 50, jitter: false },
    })
    const done = await h.waitFor(recovers, ['succeeded'])
    t.equal(done.attempts, 2)
    t.strictSame(done.result, { attempt: 2 })
  })

  t.test('the fail exception makes the job dead after one attempt', async (t) => {
    const h = await harness(t, target)
    h.worker()
    const id = await h.submit({
      type: 'fail',
      payload: { reason: 'address rejected' },
      max_attempts: 5,
    })
    const dead = await h.waitFor(id, ['dead'])
    t.equal(dead.attempts, 1)
    t.match(dead.last_error, { message: 'address rejected', class: /FailJob$/ })
  })

  t.test(
    'progress or a result too large is refused: the job dies, the next runs at once',
    async (t) => {
      const h = await harness(t, target)
      const id = await h.submit({
        type: 'bulky',
        payload: { progress_bytes: 65_537, result_bytes: 1_048_577 },
        max_attempts: 3,
        priority: 9,
      })
      // Waiting when the worker starts, behind the bulky job: the ack could take it along.
      const next = await h.submit({ type: 'echo', payload: { n: 1 } })
      h.worker()
      const dead = await h.waitFor(id, ['dead'])
      t.equal(dead.attempts, 1, 'not retried: another worker would be refused the same')
      t.equal(dead.result, null)
      t.match(dead.last_error, { class: 'OutcomeRejected', message: /result|ack/ })
      t.match(dead.progress, { rejected: /progress/ })
      t.equal(JSON.stringify(dead.progress).length < 1000, true, 'only the small report stored')
      const done = await h.waitFor(next, ['succeeded'])
      t.equal(done.attempts, 1, 'the next job was not leased along with the refused ack')
    },
  )

  t.test('an integer past 2^53 in a result or progress is refused, not rounded', async (t) => {
    const h = await harness(t, target)
    h.worker()
    const number = await h.submit({ type: 'big-id', payload: { as: 'number' }, max_attempts: 3 })
    const text = await h.submit({ type: 'big-id', payload: { as: 'string' } })
    const dead = await h.waitFor(number, ['dead'])
    t.equal(dead.attempts, 1, 'not retried: every run would end the same')
    t.equal(dead.result, null)
    t.equal(dead.last_error?.class, 'InexactInteger')
    t.match(dead.last_error?.message, /integer 9007199254740993, past 2\^53.*show 9007199254740992/)
    t.match(dead.progress, { rejected: /progress has the integer 9223372036854775807/ })
    const done = await h.waitFor(text, ['succeeded'])
    t.strictSame(done.result, { id: '9007199254740993' }, 'as a string it is kept exactly')
  })

  t.test('progress and a result at their limits are kept whole', async (t) => {
    const h = await harness(t, target)
    h.worker()
    // Over HTTP the result travels in a body of at most BODY_LIMIT (1 MiB), with the lease token.
    const resultBytes = target.transport === 'http' ? 1_000_000 : 1_048_576
    const id = await h.submit({
      type: 'bulky',
      payload: { progress_bytes: 65_536, result_bytes: resultBytes },
    })
    const done = await h.waitFor(id, ['succeeded'])
    t.equal(JSON.stringify(done.progress).length, 65_536)
    t.equal(JSON.stringify(done.result).length, resultBytes)
  })

  t.test(
    'kill -9 mid-job: another worker runs it after the lease expires; nothing is lost',
    async (t) => {
      const h = await harness(t, target)
      const first = h.worker(['--lease=1'])
      const id = await h.submit({ type: 'sleep', payload: { ms: 3000 } })
      await first.waitForLog((line) => line.msg === 'job started' && line.job_id === id)
      first.signal('SIGKILL')
      await first.exited
      t.equal((await h.status(id)).state, 'active', 'still leased to the dead worker')
      const second = h.worker(['--lease=1'])
      const done = await h.waitFor(id, ['succeeded'], 30_000)
      t.equal(done.attempts, 2)
      t.strictSame(done.result, { slept_ms: 3000 })
      t.match(
        done.history.find((entry) => entry.state === 'queued' && entry.attempt === 1),
        {
          error: /lease expired/,
        },
      )
      await second.waitForLog((line) => line.msg === 'job succeeded' && line.job_id === id)
    },
  )

  t.test('a job that kills its worker every time ends dead, not looping', async (t) => {
    const h = await harness(t, target)
    const id = await h.submit({ type: 'crash', max_attempts: 2 })
    for (let round = 0; round < 6 && (await h.status(id)).state !== 'dead'; round++) {
      const worker = h.worker(['--lease=1'])
      await Promise.race([worker.exited, sleep(3000)])
      if (worker.running) await worker.stop()
    }
    const dead = await h.waitFor(id, ['dead'], 10_000)
    t.equal(dead.attempts, 2)
    t.match(dead.last_error, { class: 'LeaseExpired' })
  })

  t.test('a late ack with the old lease after the job was re-leased changes nothing', async (t) => {
    const h = await harness(t, target)
    const stalled = h.worker(['--lease=1'])
    const id = await h.submit({ type: 'sleep', payload: { ms: 1500 } })
    await stalled.waitForLog((line) => line.msg === 'job started' && line.job_id === id)
    stalled.signal('SIGSTOP')
    const rescuer = h.worker(['--lease=5'])
    const done = await h.waitFor(id, ['succeeded'], 30_000)
    t.equal(done.attempts, 2)
    const rescuerPid = String(rescuer.pid)
    t.match(done.worker, new RegExp(`:${rescuerPid}$`))
    stalled.signal('SIGCONT')
    await stalled.waitForLog((line) => line.msg === 'lease lost' && line.job_id === id, 20_000)
    const after = await h.status(id)
    t.equal(after.state, 'succeeded')
    t.equal(after.worker, done.worker, 'the stale worker did not take over the record')
    t.equal(
      after.history.filter((entry) => entry.state === 'succeeded').length,
      1,
      'completed once',
    )
  })

  t.test('two workers, 1,000 jobs: each runs exactly once, none missing', async (t) => {
    const h = await harness(t, target)
    const ids = new Set<string>()
    const pending: Promise<string>[] = []
    for (let i = 0; i < 1000; i++) {
      pending.push(h.submit({ type: 'record', payload: { i } }))
      if (pending.length === 50) for (const id of await Promise.all(pending.splice(0))) ids.add(id)
    }
    for (const id of await Promise.all(pending)) ids.add(id)
    t.equal(ids.size, 1000)
    const workers = [h.worker(), h.worker()]
    const deadline = Date.now() + 120_000
    while (h.runs().length < 1000 && Date.now() < deadline) await sleep(100)
    const runs = h.runs()
    const ran = runs.map((run) => run.id)
    t.equal(runs.length, 1000, 'one handler run per job')
    t.equal(new Set(ran).size, 1000, 'no job ran twice')
    t.strictSame(
      [...ids].filter((id) => !ran.includes(id)),
      [],
      'no job is missing',
    )
    t.ok(
      workers.every((worker) => runs.some((run) => run.pid === worker.pid)),
      'both workers took part',
    )
    const states = await Promise.all([...ids].slice(0, 50).map((id) => h.status(id)))
    t.ok(
      states.every((status) => status.state === 'succeeded'),
      'jobs are acked',
    )
    if (target.transport === 'http') {
      // The next job comes with the ack (`reserve` in the ack's body), not from a reserve call.
      const metrics = parsePrometheus(await (await fetch(`${h.gateway.url}/metrics`)).text())
      const reserves = [...metrics]
        .filter(
          ([key]) => key.startsWith('jobgate_http_requests_total{') && key.includes('::reserve'),
        )
        .reduce((sum, [, count]) => sum + count, 0)
      t.ok(reserves < 100, `${reserves} reserve requests for 1,000 jobs`)
    }
  })

  t.test('SIGTERM during a job: it finishes, is acked, and the worker exits 0', async (t) => {
    const h = await harness(t, target)
    const worker = h.worker()
    const id = await h.submit({ type: 'sleep', payload: { ms: 800 } })
    await worker.waitForLog((line) => line.msg === 'job started' && line.job_id === id)
    worker.signal('SIGTERM')
    const { code } = await worker.exited
    t.equal(code, 0)
    t.equal((await h.status(id)).state, 'succeeded')
    t.match(
      worker.lines.find((line) => line.msg === 'worker stopping'),
      { reason: 'signal', exit_code: 0 },
    )
  })

  for (const [type, when] of [
    ['sleep', ''],
    // Most of its time is spent waiting on its progress reports when the timeout comes.
    ['report', ' while it reports progress'],
  ] as const) {
    t.test(`a job past --timeout${when} is retried and the worker exits 15`, async (t) => {
      const h = await harness(t, target)
      const worker = h.worker(['--timeout=1'])
      const id = await h.submit({ type, payload: { ms: 5000 }, backoff: { delay_ms: 60_000 } })
      const { code } = await worker.exited
      t.equal(code, 15)
      const status = await h.status(id)
      t.equal(status.state, 'scheduled')
      t.match(status.last_error, { class: 'JobTimeout' })
      t.match(
        worker.lines.find((line) => line.msg === 'job timed out'),
        { job_id: id },
      )
      t.ok(
        worker.lines.some((line) => line.msg === 'job retried' && line.job_id === id),
        'the retry was reported',
      )
    })
  }

  t.test('delayed jobs run on time; priorities are respected', async (t) => {
    const h = await harness(t, target)
    const low = await h.submit({ type: 'record', priority: 1 })
    const high = await h.submit({ type: 'record', priority: 9 })
    const middle = await h.submit({ type: 'record' })
    const delayed = await h.submit({ type: 'record', delay_ms: 1500 })
    h.worker()
    await h.waitFor(low, ['succeeded'])
    t.strictSame(
      h
        .runs()
        .map((run) => run.id)
        .slice(0, 3),
      [high, middle, low],
      'priority 9, then 5, then 1',
    )
    const early = await h.status(delayed)
    t.equal(early.state, 'scheduled', 'not delivered before its time')
    const done = await h.waitFor(delayed, ['succeeded'])
    const lateBy = Date.parse(done.started_at ?? '') - Date.parse(done.run_at)
    t.ok(lateBy >= 0, 'not started before run_at')
    t.ok(lateBy < 1000, `started within 1 s after run_at (${lateBy} ms)`)
  })

  t.test(
    'a worker of two queues runs the jobs of the first queue first, also ones that arrive late',
    async (t) => {
      const h = await harness(t, target)
      const backlog: string[] = []
      for (let i = 0; i < 6; i++) {
        backlog.push(await h.submit({ type: 'record', payload: { ms: 100 } }, 'q'))
      }
      const urgent = [
        await h.submit({ type: 'record' }, 'urgent'),
        await h.submit({ type: 'record' }, 'urgent'),
      ]
      h.worker([], ['urgent', 'q'])
      while (h.runs().length < 4) await sleep(10)
      const late = await h.submit({ type: 'record' }, 'urgent')
      const startedBeforeLate = h.runs().length
      await h.waitFor(late, ['succeeded'], 20_000, 'urgent')
      await h.waitFor(backlog.at(-1) ?? '', ['succeeded'])

      const order = h.runs().map((run) => run.id)
      t.strictSame(order.slice(0, 2), urgent, 'the waiting jobs of the first queue first')
      t.strictSame(
        order.filter((id) => backlog.includes(id)),
        backlog,
        'then those of the second queue, in order',
      )
      t.equal(order.length, 9, 'each job ran once')
      t.ok(
        order.indexOf(late) <= startedBeforeLate,
        `a job posted to the first queue runs next (at ${order.indexOf(late)}, ${startedBeforeLate} had started)`,
      )
    },
  )

  t.test('a job past its TTL and a canceled job are never delivered', async (t) => {
    const h = await harness(t, target)
    const stale = await h.submit({ type: 'record', ttl_ms: 100 })
    const canceled = await h.submit({ type: 'record' })
    const res = await fetch(`${h.gateway.url}/v1/queues/q/jobs/${canceled}`, { method: 'DELETE' })
    t.equal(res.status, 200)
    await sleep(200)
    const fresh = await h.submit({ type: 'record' })
    h.worker()
    await h.waitFor(fresh, ['succeeded'])
    await sleep(300)
    t.strictSame(
      h.runs().map((run) => run.id),
      [fresh],
      'only the fresh job ran',
    )
    t.equal((await h.status(stale)).state, 'expired')
    t.equal((await h.status(canceled)).state, 'canceled')
  })

  t.test(
    'dead-letter redrive runs the job again with attempts reset; purge removes it',
    async (t) => {
      const h = await harness(t, target)
      h.worker()
      const gate = join(h.dir, 'open')
      const id = await h.submit({ type: 'gate', payload: { file: gate } })
      await h.waitFor(id, ['dead'])
      writeFileSync(gate, '')
      const redrive = await fetch(`${h.gateway.url}/v1/queues/q/dead/${id}:redrive`, {
        method: 'POST',
      })
      t.equal(redrive.status, 200)
      const done = await h.waitFor(id, ['succeeded'])
      t.equal(done.attempts, 1, 'attempts were reset')

      const doomed = await h.submit({ type: 'fail' })
      await h.waitFor(doomed, ['dead'])
      const purge = await fetch(`${h.gateway.url}/v1/queues/q/dead/${doomed}`, { method: 'DELETE' })
      t.equal(purge.status, 204)
      t.equal((await fetch(`${h.gateway.url}/v1/queues/q/jobs/${doomed}`)).status, 404)
    },
  )

  t.test('a paused queue runs nothing until resumed, then at once', async (t) => {
    const h = await harness(t, target)
    // A long block time: on Redis only resume's wake-up can explain a prompt start (over HTTP
    // the worker polls the gateway every second, and the gateway's wait is woken the same way).
    h.worker(['--sleep=20'])
    const first = await h.submit({ type: 'record' })
    await h.waitFor(first, ['succeeded'])
    const control = (action: string) =>
      fetch(`${h.gateway.url}/v1/queues/q:${action}`, { method: 'POST' })
    t.equal((await control('pause')).status, 200)
    const held = [
      await h.submit({ type: 'record' }),
      await h.submit({ type: 'record' }),
      await h.submit({ type: 'record' }),
    ]
    await sleep(1500)
    const states = await Promise.all(held.map(async (id) => (await h.status(id)).state))
    t.strictSame(states, ['queued', 'queued', 'queued'], 'nothing ran while paused')
    const resumed = Date.now()
    t.equal((await control('resume')).status, 200)
    for (const id of held) await h.waitFor(id, ['succeeded'], 10_000)
    const took = Date.now() - resumed
    t.ok(took < 5000, `all ran ${took} ms after resume, not a block time later`)
    t.strictSame(
      h.runs().map((run) => run.id),
      [first, ...held],
      'each once, in order',
    )
  })
}
