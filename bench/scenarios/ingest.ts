import {
  BARE,
  BULLMQ,
  type Gateway,
  JOBGATE,
  JOBGATE_MINIMAL,
  JOBGATE_REPLICATED,
  LPUSH,
  waitForHttp,
} from '../lib/contenders.js'
import { cpuMs, freePort } from '../lib/proc.js'
import type { Progress } from '../lib/progress.js'
import type { BenchRedis } from '../lib/redis.js'
import { median } from '../lib/stats.js'
import { type WrkResult, wrk } from '../lib/wrk.js'

export interface IngestRun extends WrkResult {
  /**
   * The gateway's CPU time (user + system) per request during the measurement, µs: what a
   * request costs, where the rate also depends on waiting. Time the core is taken away is
   * not counted, but a disturbed machine still raises it (bench/NOTES.md). Absent in results
   * from before it was measured.
   */
  cpuUsPerRequest?: number
}

export interface IngestRow {
  gateway: Gateway
  runs: IngestRun[]
}

export interface IngestOptions {
  runs: number
  seconds: number
  warmupSeconds: number
  /** Extra gateway environment, and wrk's (e.g. WRK_QUEUES). */
  env?: Record<string, string>
  wrkEnv?: Record<string, string>
  script?: string
  /** Keep what Redis holds (a prefilled queue) instead of flushing it first. */
  keepData?: boolean
}

/** One wrk measurement of one gateway on a freshly flushed Redis. */
export async function measure(
  gateway: Gateway,
  redis: BenchRedis,
  options: IngestOptions,
): Promise<IngestRun> {
  if (!options.keepData) await redis.flush()
  const replica = gateway.replicas ? await redis.startReplica() : null
  const port = await freePort()
  const server = gateway.start(redis.url, port, options.env)
  try {
    await waitForHttp(port)
    const load = {
      url: `http://127.0.0.1:${port}`,
      script: options.script ?? 'post-job.lua',
      env: { WRK_API_KEY: gateway.apiKey ?? '', ...gateway.wrkEnv, ...options.wrkEnv },
    }
    await wrk({ ...load, seconds: options.warmupSeconds })
    const pid = server.child.pid ?? 0
    const before = cpuMs(pid)
    const result = await wrk({ ...load, seconds: options.seconds })
    return { ...result, cpuUsPerRequest: ((cpuMs(pid) - before) * 1000) / result.requests }
  } finally {
    await server.stop()
    await replica?.stop('SIGKILL')
  }
}

/**
 * HTTP ingest: every gateway, runs interleaved so that drifts of the machine hit all alike, in
 * reverse order every other run: on this machine a gateway measured right after another
 * jobgate runs slower (identical builds side by side: up to 30 % fewer requests per second,
 * bench/NOTES.md), and the order would otherwise favour the ones listed first.
 */
export async function ingest(
  redis: BenchRedis,
  progress: Progress,
  options: IngestOptions,
  /** Earlier builds of jobgate to measure alongside (`--compare`). */
  earlier: Gateway[] = [],
): Promise<IngestRow[]> {
  const contenders = [BARE, LPUSH, BULLMQ, ...earlier, JOBGATE, JOBGATE_MINIMAL, JOBGATE_REPLICATED]
  const rows: IngestRow[] = contenders.map((gateway) => ({
    gateway,
    runs: [],
  }))
  for (let run = 1; run <= options.runs; run++) {
    for (const row of run % 2 ? rows : [...rows].reverse()) {
      progress.step(`ingest: ${row.gateway.name}, run ${run}/${options.runs}`)
      const result = await measure(row.gateway, redis, options)
      row.runs.push(result)
      progress.note(
        `${Math.round(result.rps)} req/s, p99 ${result.p99Ms} ms, ${result.errors} errors, ${result.cpuUsPerRequest?.toFixed(1)} µs of gateway CPU per request`,
      )
    }
  }
  return rows
}

export const medianOf = (runs: IngestRun[], pick: (run: IngestRun) => number) =>
  median(runs.map(pick))
