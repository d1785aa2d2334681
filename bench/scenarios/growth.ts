import { JOBGATE } from '../lib/contenders.js'
import { fill, openStore } from '../lib/jobs.js'
import type { Progress } from '../lib/progress.js'
import type { BenchRedis } from '../lib/redis.js'
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
}

export interface GrowthRow {
  label: string
  ingest: WrkResult[]
  workerJobsPerSecond: number[]
}

/**
 * Ingest and worker throughput with many jobs already waiting, and with jobs spread over many
 * queues. The backlog is filled once per row (through the enqueue script); every run then
 * submits on top of it and a worker drains `workerJobs` of it, so the depth never falls below
 * the row's.
 */
export async function growth(
  redis: BenchRedis,
  progress: Progress,
  options: GrowthOptions,
): Promise<GrowthRow[]> {
  const rows: GrowthRow[] = []
  const store = await openStore(redis.url)
  try {
    for (const depth of options.depths) {
      const label = `${depth.toLocaleString('en-US')} jobs waiting, 1 queue`
      progress.step(`growth: filling ${label}`)
      await redis.flush()
      await fill(store, 'bench', depth + options.runs * options.workerJobs, (done) =>
        progress.note(`${done.toLocaleString('en-US')} jobs stored`),
      )
      rows.push(await measureRow(redis, progress, options, label, 1))
    }
    for (const queues of options.queueCounts) {
      const label = `${queues} queue${queues === 1 ? '' : 's'}, 1,000 jobs waiting in each`
      progress.step(`growth: filling ${label}`)
      await redis.flush()
      for (let q = 0; q < queues; q++) {
        await fill(store, `q${q}`, 1000 + (q === 0 ? options.runs * options.workerJobs : 0))
      }
      rows.push(await measureRow(redis, progress, options, label, queues))
    }
  } finally {
    await store.close()
  }
  return rows
}

async function measureRow(
  redis: BenchRedis,
  progress: Progress,
  options: GrowthOptions,
  label: string,
  queues: number,
): Promise<GrowthRow> {
  const row: GrowthRow = { label, ingest: [], workerJobsPerSecond: [] }
  const workerQueue = queues === 1 ? 'bench' : 'q0'
  for (let run = 1; run <= options.runs; run++) {
    progress.step(`growth: ${label}, run ${run}/${options.runs}`)
    const ingest = await measure(JOBGATE, redis, {
      runs: 1,
      seconds: options.seconds,
      warmupSeconds: options.warmupSeconds,
      keepData: true,
      wrkEnv: queues === 1 ? {} : { WRK_QUEUES: String(queues) },
    })
    row.ingest.push(ingest)
    const worker = await drainWithWorker(redis, workerQueue, options.workerJobs)
    row.workerJobsPerSecond.push(worker)
    progress.note(`ingest ${Math.round(ingest.rps)} req/s, worker ${Math.round(worker)} jobs/s`)
  }
  return row
}
