import { Agent, request } from 'node:http'

export interface SteadyOptions {
  url: string
  path: string
  apiKey?: string
  rate: number
  seconds: number
  /** The body of each request. */
  body: string
}

export interface SteadyResult {
  sent: number
  /** Job ids of the 202 answers, in the order they came. */
  ids: string[]
  errors: number
  /** Each request's latency as the client saw it, ms. */
  latenciesMs: number[]
  /** How far behind the schedule the sender fell at worst, ms (0 = on time). */
  maxLagMs: number
}

/**
 * An open-loop load at a fixed rate: request n is sent at start + n / rate whatever the
 * answers do, so a slow server shows as latency, not as a lower rate (no coordinated omission).
 */
export async function steadyLoad(options: SteadyOptions): Promise<SteadyResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 })
  const target = new URL(options.path, options.url)
  const latencies: number[] = []
  const ids: string[] = []
  const pending = new Set<Promise<void>>()
  const total = Math.round(options.rate * options.seconds)
  let errors = 0
  let maxLagMs = 0
  const prefix = `steady-${Date.now()}-`
  const started = performance.now()

  const send = (n: number) => {
    const begun = performance.now()
    const done = new Promise<void>((resolve) => {
      const req = request(
        target,
        {
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/json',
            'idempotency-key': `${prefix}${n}`,
            ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (chunk: Buffer) => chunks.push(chunk))
          res.on('end', () => {
            latencies.push(performance.now() - begun)
            if (res.statusCode === 202) {
              ids.push((JSON.parse(Buffer.concat(chunks).toString()) as { id: string }).id)
            } else {
              errors++
            }
            resolve()
          })
        },
      )
      req.on('error', () => {
        errors++
        resolve()
      })
      req.end(options.body)
    })
    pending.add(done)
    void done.then(() => pending.delete(done))
  }

  for (let n = 0; n < total; ) {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * options.rate))
    if (due > n) maxLagMs = Math.max(maxLagMs, (due - n - 1) * (1000 / options.rate))
    for (; n < due; n++) send(n)
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  await Promise.all(pending)
  agent.destroy()
  return {
    sent: total,
    ids,
    errors,
    latenciesMs: latencies,
    maxLagMs,
  }
}
