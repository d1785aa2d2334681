import { type ClientRequest, request } from 'node:http'
import { JOBGATE, waitForHttp } from '../lib/contenders.js'
import { cpuMs, freePort, sleep } from '../lib/proc.js'
import type { Progress } from '../lib/progress.js'
import type { BenchRedis } from '../lib/redis.js'

export interface FanoutOptions {
  runs: number
  /** Watchers of the queue's event stream in each row. */
  watchers: number[]
  /** Entries added to the stream per measurement, and how fast. */
  events: number
  rate: number
}

export interface FanoutRow {
  watchers: number
  /** Gateway CPU per stream entry, µs, one per run. */
  cpuUsPerEvent: number[]
  /** Entries the slowest watcher received, one per run (all of them when nothing is lost). */
  delivered: number[]
}

const EVENTS_KEY = 'jobgate:{bench}:events'
const CHUNK = 100

/** An event-stream watcher that counts the events it receives (`data:` lines). */
function watcher(url: string, apiKey: string): { request: ClientRequest; received: () => number } {
  let received = 0
  let carry = ''
  const sent = request(url, { headers: { authorization: `Bearer ${apiKey}` }, agent: false })
  sent.on('response', (response) => {
    response.setEncoding('utf8')
    response.on('data', (chunk: string) => {
      const text = carry + chunk
      received += text.match(/^data: /gm)?.length ?? 0
      // A `data:` split across chunks is counted once its line is whole.
      const lastLine = text.lastIndexOf('\n')
      carry = text.slice(lastLine + 1)
      if (carry.startsWith('data: ')) received--
    })
  })
  sent.on('error', () => {})
  sent.end()
  return { request: sent, received: () => received }
}

/** One measurement: `events` stream entries at `rate`, watched by `count` clients. */
async function measureFanout(
  redis: BenchRedis,
  count: number,
  options: FanoutOptions,
): Promise<{ cpuUsPerEvent: number; delivered: number }> {
  await redis.flush()
  const port = await freePort()
  const gateway = JOBGATE.start(redis.url, port)
  const watchers: ReturnType<typeof watcher>[] = []
  try {
    await waitForHttp(port)
    const url = `http://127.0.0.1:${port}`
    const apiKey = JOBGATE.apiKey ?? ''
    // The queue exists once it had a job; the stream route answers 404 before.
    await fetch(`${url}/v1/queues/bench/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: '{"type":"noop"}',
    })
    for (let i = 0; i < count; i++) {
      watchers.push(watcher(`${url}/v1/queues/bench/events`, apiKey))
    }
    await sleep(300)
    const pid = gateway.child.pid ?? 0
    const before = cpuMs(pid)
    const started = Date.now()
    // Entries as the protocol scripts write them, added straight to Redis: what is measured is
    // the gateway's side of the fan-out only, not the requests that cause transitions.
    for (let sent = 0; sent < options.events; sent += CHUNK) {
      const pipeline = redis.client.pipeline()
      for (let k = 0; k < CHUNK; k++) {
        const job = `0b6c1f6e-3d3a-4b8e-9a55-${String(sent + k).padStart(12, '0')}`
        pipeline.xadd(EVENTS_KEY, '*', 'job', job, 'state', 'queued', 'at', String(Date.now()))
      }
      await pipeline.exec()
      const ahead = started + ((sent + CHUNK) / options.rate) * 1000 - Date.now()
      if (ahead > 0) await sleep(ahead)
    }
    const slowest = () => Math.min(...watchers.map((w) => w.received()))
    const deadline = Date.now() + 10_000
    while (slowest() < options.events && Date.now() < deadline) await sleep(20)
    return {
      cpuUsPerEvent: ((cpuMs(pid) - before) * 1000) / options.events,
      delivered: slowest(),
    }
  } finally {
    for (const w of watchers) w.request.destroy()
    await gateway.stop()
  }
}

/** Gateway CPU per event-stream entry with 1, 10, 100 watchers of the queue. */
export async function fanout(
  redis: BenchRedis,
  progress: Progress,
  options: FanoutOptions,
): Promise<FanoutRow[]> {
  const rows: FanoutRow[] = options.watchers.map((watchers) => ({
    watchers,
    cpuUsPerEvent: [],
    delivered: [],
  }))
  for (let run = 1; run <= options.runs; run++) {
    // Alternate the order so a drift of the machine does not land on one row.
    for (const row of run % 2 ? rows : [...rows].reverse()) {
      progress.step(`fan-out: ${row.watchers} watcher(s), run ${run}/${options.runs}`)
      const result = await measureFanout(redis, row.watchers, options)
      row.cpuUsPerEvent.push(result.cpuUsPerEvent)
      row.delivered.push(result.delivered)
      progress.note(
        `${result.cpuUsPerEvent.toFixed(1)} µs of gateway CPU per entry, slowest watcher got ${result.delivered}`,
      )
    }
  }
  return rows
}
