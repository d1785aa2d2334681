import { JOBGATE, waitForHttp } from '../lib/contenders.js'
import { APP_CPU, freePort, launch, sleep } from '../lib/proc.js'
import type { Progress } from '../lib/progress.js'
import type { BenchRedis } from '../lib/redis.js'
import { percentile } from '../lib/stats.js'
import { steadyLoad } from '../lib/steady.js'

export interface EndToEndOptions {
  rate: number
  seconds: number
}

export interface EndToEndResult {
  rate: number
  jobs: number
  /** created_at → finished_at of each job, from the job's own timestamps (Redis clock), ms. */
  p50Ms: number
  p99Ms: number
  maxMs: number
  /** The POST as the producer saw it, ms. */
  httpP50Ms: number
  httpP99Ms: number
  errors: number
  maxLagMs: number
}

/**
 * POST → PHP worker → ack at a steady rate: jobgate (production settings) and one
 * jobgate-worker on the application core, Redis and the load on the other.
 */
export async function endToEnd(
  redis: BenchRedis,
  progress: Progress,
  options: EndToEndOptions,
): Promise<EndToEndResult> {
  progress.step(`end to end: ${options.rate} jobs/s for ${options.seconds} s`)
  await redis.flush()
  const port = await freePort()
  const gateway = JOBGATE.start(redis.url, port)
  const worker = launch(APP_CPU, 'php', [
    'php-worker/bin/jobgate-worker',
    '--queue=bench',
    '--handlers=bench/php/handlers.php',
    `--redis=${redis.url}`,
  ])
  try {
    await waitForHttp(port)
    const load = {
      url: `http://127.0.0.1:${port}`,
      path: '/v1/queues/bench/jobs',
      apiKey: JOBGATE.apiKey ?? '',
      body: JSON.stringify({ type: 'noop', payload: { to: 'ada@example.com', n: 42 } }),
    }
    await steadyLoad({ ...load, rate: options.rate, seconds: 2 }) // warm-up
    const result = await steadyLoad({ ...load, rate: options.rate, seconds: options.seconds })
    const latencies = await jobLatencies(redis, result.ids)
    const summary: EndToEndResult = {
      rate: options.rate,
      jobs: latencies.length,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      maxMs: Math.max(...latencies),
      httpP50Ms: percentile(result.latenciesMs, 50),
      httpP99Ms: percentile(result.latenciesMs, 99),
      errors: result.errors + (result.ids.length - latencies.length),
      maxLagMs: result.maxLagMs,
    }
    progress.note(
      `job p50 ${summary.p50Ms} ms, p99 ${summary.p99Ms} ms; POST p99 ${summary.httpP99Ms.toFixed(2)} ms`,
    )
    return summary
  } finally {
    await worker.stop()
    await gateway.stop()
  }
}

/** Waits until every job has finished, then reads created_at → finished_at of each. */
async function jobLatencies(redis: BenchRedis, ids: readonly string[]): Promise<number[]> {
  const deadline = Date.now() + 30_000
  for (;;) {
    const pipeline = redis.client.pipeline()
    for (const id of ids) pipeline.hmget(`jobgate:{bench}:job:${id}`, 'created_at', 'finished_at')
    const rows = ((await pipeline.exec()) ?? []).map(([, row]) => row as (string | null)[])
    const finished = rows.filter(([, finishedAt]) => finishedAt)
    if (finished.length === ids.length || Date.now() > deadline) {
      return finished.map(([createdAt, finishedAt]) => Number(finishedAt) - Number(createdAt))
    }
    await sleep(200)
  }
}
