import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { jobgateAt, waitForHttp } from '../lib/contenders.js'
import { fill, NOOP_BODY, openStore } from '../lib/jobs.js'
import { APP_CPU, freePort, launch, ROOT } from '../lib/proc.js'
import type { Progress } from '../lib/progress.js'
import type { BenchRedis } from '../lib/redis.js'

/** Exit code of jobgate-worker after `--max-jobs` (php-worker/src/ExitCode.php). */
const MAX_JOBS_EXIT = 13

export interface WorkerOptions {
  runs: number
  /** Jobs each run drains. */
  jobs: number
}

export interface WorkerRow {
  name: string
  what: string
  jobsPerSecond: number[]
}

/** The gateway an HTTP-transport worker talks to. */
interface GatewayEndpoint {
  url: string
  apiKey: string
}

/**
 * One jobgate-worker process (full protocol) drains `count` noop jobs from `queue`, which must
 * hold at least that many: over Redis, or over HTTP through `gateway`. Jobs/s from spawn to
 * exit. `emptyAhead` are queues the worker serves first (`--queue` before `queue`) that hold
 * nothing.
 */
export async function drainWithWorker(
  redis: BenchRedis,
  queue: string,
  count: number,
  root = ROOT,
  emptyAhead: string[] = [],
  gateway: GatewayEndpoint | null = null,
): Promise<number> {
  const before = await succeeded(redis, queue)
  const started = performance.now()
  const transport =
    gateway === null
      ? [`--redis=${redis.url}`]
      : ['--transport=http', `--gateway=${gateway.url}`, `--api-key=${gateway.apiKey}`]
  const worker = launch(APP_CPU, 'php', [
    join(root, 'php-worker/bin/jobgate-worker'),
    ...[...emptyAhead, queue].map((name) => `--queue=${name}`),
    '--handlers=bench/php/handlers.php',
    ...transport,
    `--max-jobs=${count}`,
    '--sleep=0.5',
  ])
  const code = await worker.exited
  const seconds = (performance.now() - started) / 1000
  if (code !== MAX_JOBS_EXIT) throw new Error(`bench: jobgate-worker exited with ${code}`)
  const done = (await succeeded(redis, queue)) - before
  if (done !== count) throw new Error(`bench: the worker acked ${done} jobs, not ${count}`)
  return count / seconds
}

/** `drainWithWorker` over HTTP, through the gateway built in `root` (started for the drain). */
async function drainOverHttp(
  redis: BenchRedis,
  queue: string,
  count: number,
  root: string,
): Promise<number> {
  const jobgate = jobgateAt(root, 'jobgate')
  const port = await freePort()
  const gateway = jobgate.start(redis.url, port)
  try {
    await waitForHttp(port)
    const endpoint = { url: `http://127.0.0.1:${port}`, apiKey: jobgate.apiKey ?? '' }
    return await drainWithWorker(redis, queue, count, root, [], endpoint)
  } finally {
    await gateway.stop()
  }
}

async function succeeded(redis: BenchRedis, queue: string): Promise<number> {
  return Number((await redis.client.hget(`jobgate:{${queue}}:stats`, 'succeeded')) ?? 0)
}

/** The PHP ceiling: BRPOP + json_decode of `count` messages shaped like a job. */
async function drainWithBrpop(redis: BenchRedis, count: number): Promise<number> {
  const list = 'plain:{bench}:jobs'
  for (let done = 0; done < count; done += 1000) {
    const pipeline = redis.client.pipeline()
    for (let i = done; i < Math.min(count, done + 1000); i++) {
      pipeline.lpush(list, JSON.stringify({ id: randomUUID(), ...NOOP_BODY, attempts: 0 }))
    }
    await pipeline.exec()
  }
  const started = performance.now()
  const loop = launch(APP_CPU, 'php', [
    'bench/php/brpop-loop.php',
    `--redis=${redis.url}`,
    `--list=${list}`,
    `--count=${count}`,
  ])
  const code = await loop.exited
  const seconds = (performance.now() - started) / 1000
  if (code !== 0) throw new Error(`bench: brpop-loop exited with ${code}`)
  if ((await redis.client.llen(list)) !== 0) throw new Error('bench: brpop-loop left messages')
  return count / seconds
}

/** An earlier build of jobgate (`--compare`): its worker runs with its own Lua scripts. */
export interface ComparedWorker {
  name: string
  root: string
}

/** The row of this checkout's worker, which the target is measured on. */
export const WORKER_ROW = 'jobgate-worker'

/** The queue served first in the two-queue rows; it stays empty. */
const EMPTY_FIRST = 'urgent'

/**
 * Worker throughput: jobgate-worker (and earlier builds of it) against the bare BRPOP loop,
 * runs interleaved; each build also drains the jobs as the second of two queues it serves,
 * the first one empty (`--queue=urgent --queue=bench`).
 */
export async function workerThroughput(
  redis: BenchRedis,
  progress: Progress,
  options: WorkerOptions,
  compared: ComparedWorker[] = [],
): Promise<WorkerRow[]> {
  const bare: WorkerRow = {
    name: 'phpredis BRPOP + json_decode (PHP ceiling)',
    what: 'a bare loop: no lease, ack, history, events or retries',
    jobsPerSecond: [],
  }
  const what = 'one process, Redis transport: reserve (lease, attempt, history, event) + noop + ack'
  const builds = [...compared, { name: WORKER_ROW, root: ROOT }]
  const workers: { root: string; emptyAhead: string[]; row: WorkerRow }[] = [
    ...builds.map(({ name, root }) => ({
      root,
      emptyAhead: [],
      row: { name, what, jobsPerSecond: [] },
    })),
    ...builds.map(({ name, root }) => ({
      root,
      emptyAhead: [EMPTY_FIRST],
      row: {
        name: `${name}, 2 queues`,
        what: `as above, with \`--queue=${EMPTY_FIRST} --queue=bench\`: the jobs wait in the second queue, the first stays empty`,
        jobsPerSecond: [],
      },
    })),
  ]
  const overHttp = builds.map(({ name, root }) => ({
    root,
    row: {
      name: `${name}, HTTP transport`,
      what: "as the first, through the gateway's worker routes (`--transport=http`; the gateway shares the worker's core)",
      jobsPerSecond: [] as number[],
    },
  }))
  const store = await openStore(redis.url)
  try {
    for (let run = 1; run <= options.runs; run++) {
      progress.step(`worker: BRPOP loop, run ${run}/${options.runs}`)
      await redis.flush()
      bare.jobsPerSecond.push(await drainWithBrpop(redis, options.jobs))
      progress.note(`${Math.round(bare.jobsPerSecond.at(-1) ?? 0)} jobs/s`)

      for (const { root, emptyAhead, row } of workers) {
        progress.step(`worker: ${row.name}, run ${run}/${options.runs}`)
        await redis.flush()
        await fill(store, 'bench', options.jobs)
        row.jobsPerSecond.push(
          await drainWithWorker(redis, 'bench', options.jobs, root, emptyAhead),
        )
        progress.note(`${Math.round(row.jobsPerSecond.at(-1) ?? 0)} jobs/s`)
      }

      for (const { root, row } of overHttp) {
        progress.step(`worker: ${row.name}, run ${run}/${options.runs}`)
        await redis.flush()
        await fill(store, 'bench', options.jobs)
        row.jobsPerSecond.push(await drainOverHttp(redis, 'bench', options.jobs, root))
        progress.note(`${Math.round(row.jobsPerSecond.at(-1) ?? 0)} jobs/s`)
      }
    }
  } finally {
    await store.close()
  }
  return [bare, ...workers.map(({ row }) => row), ...overHttp.map(({ row }) => row)]
}
