import { JOBGATE, waitForHttp } from '../lib/contenders.js'
import { freePort, rssBytes } from '../lib/proc.js'
import type { Progress } from '../lib/progress.js'
import type { BenchRedis } from '../lib/redis.js'
import { steadyLoad } from '../lib/steady.js'

export interface SoakOptions {
  rate: number
  seconds: number
  /** Samples taken before this are the warm-up, not the baseline. */
  warmupSeconds: number
}

export interface SoakResult {
  rate: number
  seconds: number
  warmupSeconds: number
  sent: number
  errors: number
  /** RSS samples (every 5 s after the warm-up), MiB. */
  samplesMiB: number[]
}

/** The gateway's resident memory under a steady load at `rate`, sampled every 5 s. */
export async function soak(
  redis: BenchRedis,
  progress: Progress,
  options: SoakOptions,
): Promise<SoakResult> {
  progress.step(`soak: ${options.rate} req/s for ${options.seconds} s`)
  await redis.flush()
  // Five minutes at this rate write gigabytes to the AOF: keep it in check as production does.
  await redis.rewriteAutomatically(true)
  const port = await freePort()
  const gateway = JOBGATE.start(redis.url, port)
  try {
    await waitForHttp(port)
    const pid = gateway.child.pid ?? 0
    const samples: number[] = []
    const started = Date.now()
    const sampler = setInterval(() => {
      const elapsed = (Date.now() - started) / 1000
      if (elapsed < options.warmupSeconds) return
      samples.push(rssBytes(pid) / 2 ** 20)
      if (samples.length % 12 === 0) {
        progress.note(`${Math.round(elapsed)} s: RSS ${samples.at(-1)?.toFixed(1)} MiB`)
      }
    }, 5000)
    const load = await steadyLoad({
      url: `http://127.0.0.1:${port}`,
      path: '/v1/queues/bench/jobs',
      apiKey: JOBGATE.apiKey ?? '',
      body: JSON.stringify({ type: 'noop', payload: { to: 'ada@example.com', n: 42 } }),
      rate: options.rate,
      seconds: options.seconds,
    })
    clearInterval(sampler)
    return {
      rate: options.rate,
      seconds: options.seconds,
      warmupSeconds: options.warmupSeconds,
      sent: load.sent,
      errors: load.errors,
      samplesMiB: samples,
    }
  } finally {
    await gateway.stop()
    await redis.rewriteAutomatically(false)
  }
}
