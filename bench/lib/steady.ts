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
  /**
   * How far behind its due time a request was sent at worst, ms: the sender's own lag, or
   * waiting for one of the requests in flight to finish.
   */
  maxLagMs: number
}

/** Requests in flight at most; beyond them due requests wait in the sender, in order. */
const IN_FLIGHT = 64

/**
 * An open-loop load at a fixed rate: request n is due at start + n / rate whatever the answers
 * do, and its latency counts from then, so a slow server shows as latency, not as a lower rate
 * (no coordinated omission). At most IN_FLIGHT requests are out at once; due requests beyond
 * them wait in the sender as a count (not as queued requests, which a server that falls far
 * behind would pile up by the hundred thousand in the client).
 */
export async function steadyLoad(options: SteadyOptions): Promise<SteadyResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT })
  const target = new URL(options.path, options.url)
  const latencies: number[] = []
  const ids: string[] = []
  const total = Math.round(options.rate * options.seconds)
  let errors = 0
  let maxLagMs = 0
  let next = 0
  let inFlight = 0
  let finished = 0
  const prefix = `steady-${Date.now()}-`
  const started = performance.now()
  const dueAt = (n: number) => started + (n * 1000) / options.rate
  let allDone = () => {}
  const done = new Promise<void>((resolve) => {
    allDone = resolve
  })

  const settle = (n: number, accepted: string | null) => {
    latencies.push(performance.now() - dueAt(n))
    if (accepted === null) errors++
    else ids.push(accepted)
    inFlight--
    finished++
    if (finished === total) allDone()
    else sendDue()
  }

  const send = (n: number) => {
    inFlight++
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
          const body = Buffer.concat(chunks).toString()
          settle(n, res.statusCode === 202 ? (JSON.parse(body) as { id: string }).id : null)
        })
      },
    )
    req.on('error', () => settle(n, null))
    req.end(options.body)
  }

  /** Sends what is due, as far as the requests in flight allow. */
  const sendDue = () => {
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * options.rate))
    for (; next < due && inFlight < IN_FLIGHT; next++) {
      maxLagMs = Math.max(maxLagMs, performance.now() - dueAt(next))
      send(next)
    }
  }

  if (total === 0) allDone()
  while (next < total) {
    sendDue()
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  await done
  agent.destroy()
  return {
    sent: total,
    ids,
    errors,
    latenciesMs: latencies,
    maxLagMs,
  }
}
