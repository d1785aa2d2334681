import type { Store } from '../../src/queue/store.js'
import { newJob } from '../../src/submission.js'
import { CountedRedis } from '../lib/callgrind.js'
import { JOBGATE } from '../lib/contenders.js'
import { fill, NOOP_BODY, openStore } from '../lib/jobs.js'
import type { Progress } from '../lib/progress.js'
import { BenchRedis } from '../lib/redis.js'
import type { WrkResult } from '../lib/wrk.js'
import { measure } from './ingest.js'
import { drainWithWorker } from './worker.js'

export interface GrowthOptions {
  runs: number
  seconds: number
  warmupSeconds: number
  workerJobs: number
  depths: number[]
  queueCounts: number[]
  /** Calls of each kind counted under callgrind per row (0 = skip the count). */
  countedCalls: number
}

/** Redis instructions per call, counted with callgrind: the same at every depth, or not. */
export interface RedisWork {
  enqueue: number
  reserveAndAck: number
}

export interface GrowthRow {
  label: string
  ingest: WrkResult[]
  workerJobsPerSecond: number[]
  redisWork?: RedisWork
}

/** The queue the worker drains: the only one, or the first of many. */
const workerQueue = (queues: number) => (queues === 1 ? 'bench' : 'q0')

/** A row's backlog: its own Redis, filled once, measured in every run. */
interface Backlog {
  row: GrowthRow
  redis: BenchRedis
  queues: number
}

/**
 * Ingest and worker throughput with many jobs already waiting, and with jobs spread over many
 * queues. Each row's backlog is filled once (through the enqueue script) in a Redis of its own,
 * all of them running side by side; every run then measures each row in turn, in an order that
 * rotates from run to run, so that a drift of the machine does not land on one row. A run
 * submits on top of the backlog and a worker drains `workerJobs` of it, so the depth never falls
 * below the row's.
 */
export async function growth(progress: Progress, options: GrowthOptions): Promise<GrowthRow[]> {
  const backlogs: Backlog[] = []
  try {
    for (const depth of options.depths) {
      const label = `${depth.toLocaleString('en-US')} jobs waiting, 1 queue`
      backlogs.push(
        await prepare(progress, options, label, 1, async (store) => {
          await fill(store, 'bench', depth + options.runs * options.workerJobs, (done) =>
            progress.note(`${done.toLocaleString('en-US')} jobs stored`),
          )
        }),
      )
    }
    for (const queues of options.queueCounts) {
      const label = `${queues} queue${queues === 1 ? '' : 's'}, 1,000 jobs waiting in each`
      backlogs.push(
        await prepare(progress, options, label, queues, async (store) => {
          for (let q = 0; q < queues; q++) {
            await fill(store, `q${q}`, 1000 + (q === 0 ? options.runs * options.workerJobs : 0))
          }
        }),
      )
    }
    for (let run = 1; run <= options.runs; run++) {
      const turn = (i: number) => backlogs[(i + run - 1) % backlogs.length] as Backlog
      for (let i = 0; i < backlogs.length; i++) {
        await measureOnce(progress, options, turn(i), run)
      }
    }
  } finally {
    for (const backlog of backlogs) await backlog.redis.stop()
  }
  return backlogs.map((backlog) => backlog.row)
}

async function prepare(
  progress: Progress,
  options: GrowthOptions,
  label: string,
  queues: number,
  fillBacklog: (store: Store) => Promise<void>,
): Promise<Backlog> {
  progress.step(`growth: filling ${label}`)
  const redis = await BenchRedis.start()
  try {
    const store = await openStore(redis.url)
    try {
      await fillBacklog(store)
    } finally {
      await store.close()
    }
    const queue = workerQueue(queues)
    const redisWork = await countRedisWork(redis, progress, queue, options.countedCalls)
    return { row: { label, ingest: [], workerJobsPerSecond: [], ...redisWork }, redis, queues }
  } catch (error) {
    // Not a backlog yet, so growth() would not stop it: its data directory may hold gigabytes.
    await redis.stop()
    throw error
  }
}

async function measureOnce(
  progress: Progress,
  options: GrowthOptions,
  { row, redis, queues }: Backlog,
  run: number,
): Promise<void> {
  progress.step(`growth: ${row.label}, run ${run}/${options.runs}`)
  await redis.compact()
  const ingest = await measure(JOBGATE, redis, {
    runs: 1,
    seconds: options.seconds,
    warmupSeconds: options.warmupSeconds,
    keepData: true,
    wrkEnv: queues === 1 ? {} : { WRK_QUEUES: String(queues) },
  })
  row.ingest.push(ingest)
  const worker = await drainWithWorker(redis, workerQueue(queues), options.workerJobs)
  row.workerJobsPerSecond.push(worker)
  progress.note(`ingest ${Math.round(ingest.rps)} req/s, worker ${Math.round(worker)} jobs/s`)
}

/**
 * On a snapshot of the filled Redis, under callgrind: `calls` enqueues the way the gateway
 * makes them (one script call each, with an idempotency key and the production depth check),
 * then `calls` reserve + ack pairs the way a worker makes them.
 */
async function countRedisWork(
  redis: BenchRedis,
  progress: Progress,
  queue: string,
  calls: number,
): Promise<{ redisWork?: RedisWork }> {
  if (calls === 0) return {}
  progress.note('counting Redis instructions per call (callgrind)')
  const counted = await CountedRedis.start(await redis.snapshot())
  const store = await openStore(counted.url, { MAX_QUEUE_DEPTH: '100000000' })
  try {
    const submitter = { queue, requestId: 'bench-count', client: 'bench' }
    const enqueueOne = async (key: string) => {
      await store.jobs.enqueue(newJob(NOOP_BODY, submitter, key))
    }
    const reserveAndAckOne = async () => {
      const reserved = await store.leases.reserve(queue, 'bench-count', 60_000)
      if (!reserved.job) throw new Error(`bench: ${queue} ran dry while counting`)
      await store.leases.ack(queue, reserved.job.id, reserved.job.leaseToken, null)
    }
    // Outside the count: the first call of each script loads it into Redis.
    await enqueueOne('count-warm-up')
    await reserveAndAckOne()
    const enqueue = await counted.instructions(async () => {
      for (let i = 0; i < calls; i++) await enqueueOne(`count-${i}`)
    })
    const reserveAndAck = await counted.instructions(async () => {
      for (let i = 0; i < calls; i++) await reserveAndAckOne()
    })
    return { redisWork: { enqueue: enqueue / calls, reserveAndAck: reserveAndAck / calls } }
  } finally {
    await store.close()
    await counted.stop()
  }
}
