import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from './lib/proc.js'
import { count, fixed, median, spread } from './lib/stats.js'
import type { WrkResult } from './lib/wrk.js'
import type { EndToEndResult } from './scenarios/end-to-end.js'
import type { FanoutRow } from './scenarios/fanout.js'
import type { GrowthRow } from './scenarios/growth.js'
import type { IngestRow, IngestRun } from './scenarios/ingest.js'
import type { SoakResult } from './scenarios/soak.js'
import { WORKER_ROW, type WorkerRow } from './scenarios/worker.js'

export interface Report {
  date: string
  quick: boolean
  runs: number
  seconds: number
  machine: Record<string, string | number>
  sizes: Record<string, unknown>
  ingest?: IngestRow[]
  batch?: IngestRow[]
  worker?: WorkerRow[]
  endToEnd?: EndToEndResult
  growth?: GrowthRow[]
  soak?: SoakResult
  fanout?: FanoutRow[]
}

interface Target {
  goal: string
  measured: string
  met: boolean
}

const rpsOf = (runs: WrkResult[]) => median(runs.map((run) => run.rps))
const pct = (ratio: number) => `${ratio >= 0 ? '+' : ''}${(ratio * 100).toFixed(1)} %`
const mark = (met: boolean) => (met ? 'met' : '**not met**')

/** A Markdown table; columns of numbers are right-aligned. */
function table(head: string[], rows: (string | number)[][]): string {
  const numeric = head.map((_, i) =>
    rows.every((row) => /^[-+]?[\d,.]+( %| ×)?$|^n\/a$|^$/.test(String(row[i] ?? ''))),
  )
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i > 0 && numeric[i] ? '---:' : '---')).join('|')}|`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n')
}

/** The runs' errors in all, with the kinds wrk told apart, e.g. `57 (timeout 50, read 7)`. */
function errorsOf(runs: IngestRun[]): string {
  const total = runs.reduce((sum, run) => sum + run.errors, 0)
  const kinds = new Map<string, number>()
  for (const run of runs) {
    for (const [kind, n] of Object.entries(run.errorKinds ?? {})) {
      if (n > 0) kinds.set(kind, (kinds.get(kind) ?? 0) + n)
    }
  }
  if (total === 0 || kinds.size === 0) return String(total)
  return `${total} (${[...kinds].map(([kind, n]) => `${kind} ${n}`).join(', ')})`
}

/** Median gateway CPU per request (per job: `jobsPerRequest`), µs; '–' where not measured. */
function cpuPer(runs: IngestRun[], jobsPerRequest: number): string {
  const measured = runs.flatMap((run) => run.cpuUsPerRequest ?? [])
  return measured.length === 0 ? '–' : (median(measured) / jobsPerRequest).toFixed(1)
}

function ingestSection(rows: IngestRow[], batches: IngestRow[], targets: Target[]): string {
  const byName = (prefix: string) => rows.find((row) => row.gateway.name.startsWith(prefix))
  const jobgate = rows.find((row) => row.gateway.name === 'jobgate')
  const lpush = byName('Fastify + LPUSH')
  const bullmq = byName('Fastify + BullMQ')
  const body = rows.map((row) => [
    row.gateway.name,
    count(rpsOf(row.runs)),
    spread(row.runs.map((run) => run.rps)),
    fixed(median(row.runs.map((run) => run.p50Ms))),
    fixed(median(row.runs.map((run) => run.p99Ms))),
    cpuPer(row.runs, 1),
    errorsOf(row.runs),
    row.gateway.what,
  ])
  for (const batch of batches) {
    body.push([
      `${batch.gateway.name} (jobs/s)`,
      count(rpsOf(batch.runs) * 100),
      spread(batch.runs.map((run) => run.rps * 100)),
      fixed(median(batch.runs.map((run) => run.p50Ms))),
      fixed(median(batch.runs.map((run) => run.p99Ms))),
      cpuPer(batch.runs, 100),
      errorsOf(batch.runs),
      'POST …/jobs:batch with 100 jobs, each with its own idempotency key; latency per batch',
    ])
  }
  if (jobgate && bullmq && lpush) {
    const j = rpsOf(jobgate.runs)
    const p99 = median(jobgate.runs.map((run) => run.p99Ms))
    targets.push(
      {
        goal: 'ingest ≥ 1.5 × Fastify + BullMQ',
        measured: `${fixed(j / rpsOf(bullmq.runs))} ×`,
        met: j >= 1.5 * rpsOf(bullmq.runs),
      },
      {
        goal: 'ingest ≥ 0.85 × Fastify + LPUSH',
        measured: `${fixed(j / rpsOf(lpush.runs))} ×`,
        met: j >= 0.85 * rpsOf(lpush.runs),
      },
      {
        goal: 'ingest p99 ≤ 10 ms at 50 connections',
        measured: `${fixed(p99)} ms`,
        met: p99 <= 10,
      },
    )
  }
  return [
    '## 1. HTTP ingest',
    '',
    'wrk, 1 thread, 50 connections, a fresh `Idempotency-Key` on every POST; median of the runs',
    '(spread = slowest–fastest run). Every gateway answers 202 with a JSON body. CPU µs: the',
    "gateway process's CPU time per request (per job for batches), median of the runs.",
    '',
    table(
      ['gateway', 'req/s', 'spread', 'p50 ms', 'p99 ms', 'CPU µs', 'errors', 'what it does'],
      body,
    ),
  ].join('\n')
}

function workerSection(rows: WorkerRow[], jobs: unknown, targets: Target[]): string {
  const [bare] = rows
  const worker = rows.find((row) => row.name === WORKER_ROW)
  if (bare && worker) {
    const ratio = median(worker.jobsPerSecond) / median(bare.jobsPerSecond)
    targets.push({
      goal: 'worker ≥ 0.5 × bare BRPOP loop',
      measured: `${fixed(ratio)} ×`,
      met: ratio >= 0.5,
    })
  }
  return [
    '## 2. Worker throughput',
    '',
    `${count(Number(jobs))} waiting no-op jobs drained by one PHP process, from spawn to exit.`,
    '',
    table(
      ['consumer', 'jobs/s', 'spread', 'what it does'],
      rows.map((row) => [
        row.name,
        count(median(row.jobsPerSecond)),
        spread(row.jobsPerSecond),
        row.what,
      ]),
    ),
  ].join('\n')
}

function endToEndSection(result: EndToEndResult, targets: Target[]): string {
  targets.push(
    { goal: 'end to end p50 ≤ 2 ms', measured: `${result.p50Ms} ms`, met: result.p50Ms <= 2 },
    { goal: 'end to end p99 ≤ 10 ms', measured: `${result.p99Ms} ms`, met: result.p99Ms <= 10 },
  )
  return [
    '## 3. End to end',
    '',
    `An open-loop producer POSTs ${result.rate} jobs/s to jobgate (production settings); one`,
    'jobgate-worker runs them. Latency is `finished_at − created_at` from each job record (both',
    'stamped by Redis, whole milliseconds).',
    '',
    table(
      [
        'jobs',
        'p50 ms',
        'p99 ms',
        'max ms',
        'POST p50 ms',
        'POST p99 ms',
        'errors',
        'sender lag ms',
      ],
      [
        [
          count(result.jobs),
          result.p50Ms,
          result.p99Ms,
          result.maxMs,
          fixed(result.httpP50Ms),
          fixed(result.httpP99Ms),
          result.errors,
          fixed(result.maxLagMs, 0),
        ],
      ],
    ),
  ].join('\n')
}

function growthSection(rows: GrowthRow[], targets: Target[]): string {
  const depthRows = rows.filter((row) => row.label.endsWith('1 queue'))
  const queueRows = rows.filter((row) => !row.label.endsWith('1 queue'))
  const change = (group: GrowthRow[], pick: (row: GrowthRow) => number) => {
    const base = group[0] ? pick(group[0]) : Number.NaN
    return group.map((row) => pick(row) / base - 1)
  }
  const ingestOf = (row: GrowthRow) => rpsOf(row.ingest)
  const workerOf = (row: GrowthRow) => median(row.workerJobsPerSecond)
  const enqueueWork = (row: GrowthRow) => row.redisWork?.enqueue ?? Number.NaN
  const pairWork = (row: GrowthRow) => row.redisWork?.reserveAndAck ?? Number.NaN
  const counted = rows.filter((row) => row.redisWork)
  for (const [name, group] of [
    ['depth', depthRows],
    ['queue count', queueRows],
  ] as const) {
    for (const [measure, measured, picks] of [
      ['throughput', group, [ingestOf, workerOf]],
      [
        'Redis instructions per call',
        group.filter((row) => row.redisWork),
        [enqueueWork, pairWork],
      ],
    ] as const) {
      if (measured.length < 2) continue
      const worst = picks
        .flatMap((pick) => change(measured, pick))
        .reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a), 0)
      targets.push({
        goal: `${name} changes ${measure} by < 10 %${measure === 'throughput' ? '' : ' (callgrind)'}`,
        measured: `worst ${pct(worst)}`,
        met: Math.abs(worst) < 0.1,
      })
    }
  }
  const workBody = (group: GrowthRow[]) => {
    const withWork = group.filter((row) => row.redisWork)
    const enqueueChange = change(withWork, enqueueWork)
    const pairChange = change(withWork, pairWork)
    return withWork.map((row, i) => [
      row.label,
      count(enqueueWork(row)),
      pct(enqueueChange[i] ?? Number.NaN),
      count(pairWork(row)),
      pct(pairChange[i] ?? Number.NaN),
    ])
  }
  const workTable =
    counted.length === 0
      ? []
      : [
          '',
          'Redis instructions per call, counted with `valgrind --tool=callgrind` on a copy of the',
          "same backlog (the count does not depend on the machine's load): enqueues as the gateway",
          'makes them (idempotency key, depth check), reserve + ack as a worker makes them.',
          '',
          table(
            ['backlog', 'per enqueue', 'change', 'per reserve + ack', 'change'],
            [...workBody(depthRows), ...workBody(queueRows)],
          ),
        ]
  const body = (group: GrowthRow[]) => {
    const ingestChange = change(group, ingestOf)
    const workerChange = change(group, workerOf)
    return group.map((row, i) => [
      row.label,
      count(ingestOf(row)),
      pct(ingestChange[i] ?? Number.NaN),
      fixed(median(row.ingest.map((run) => run.p99Ms))),
      count(workerOf(row)),
      pct(workerChange[i] ?? Number.NaN),
    ])
  }
  return [
    '## 4. Growth',
    '',
    'jobgate ingest (as in 1; with several queues wrk spreads the POSTs over all of them) and one',
    'jobgate-worker draining the first queue, on top of a backlog. Each backlog waits in a Redis of',
    'its own, filled once; each run measures every row, in an order that rotates from run to run.',
    'Change is against the first row.',
    '',
    table(
      ['backlog', 'ingest req/s', 'change', 'p99 ms', 'worker jobs/s', 'change'],
      [...body(depthRows), ...body(queueRows)],
    ),
    ...workTable,
  ].join('\n')
}

function soakSection(result: SoakResult, targets: Target[]): string {
  const [first] = result.samplesMiB
  const max = Math.max(...result.samplesMiB)
  const min = Math.min(...result.samplesMiB)
  const drift = first ? Math.max(max / first - 1, 1 - min / first) : Number.NaN
  targets.push({
    goal: 'RSS flat (± 10 %) over the soak',
    measured: `${fixed(min, 1)}–${fixed(max, 1)} MiB (${pct(drift)} of the first sample)`,
    met: drift <= 0.1,
  })
  const last = result.samplesMiB.at(-1) ?? Number.NaN
  return [
    '## 5. Memory soak',
    '',
    `jobgate at ${count(result.rate)} req/s (half its median ingest peak, unless \`--soak-rate\` set it) for ${result.seconds} s;`,
    `resident memory every 5 s after a ${result.warmupSeconds} s warm-up.`,
    '',
    table(
      ['requests', 'errors', 'first MiB', 'min MiB', 'max MiB', 'last MiB'],
      [
        [
          count(result.sent),
          result.errors,
          fixed(first ?? Number.NaN, 1),
          fixed(min, 1),
          fixed(max, 1),
          fixed(last, 1),
        ],
      ],
    ),
  ].join('\n')
}

function fanoutSection(rows: FanoutRow[], sizes: Record<string, unknown>): string {
  const base = median(rows[0]?.cpuUsPerEvent ?? [])
  return [
    '## 6. Event-stream fan-out',
    '',
    `${count(Number(sizes.fanoutEvents))} entries added to one queue's event stream at ${count(Number(sizes.fanoutRate))}/s`,
    '(straight to Redis, as the protocol scripts write them), each delivered by the gateway to',
    'every watcher of `GET /v1/queues/bench/events`; the gateway CPU they cost, per entry.',
    '',
    table(
      [
        'watchers',
        'gateway CPU per entry, µs (median)',
        'spread',
        'vs 1 watcher',
        'delivered to the slowest',
      ],
      rows.map((row) => {
        const cpu = median(row.cpuUsPerEvent)
        return [
          row.watchers,
          fixed(cpu, 1),
          spread(row.cpuUsPerEvent, (value) => fixed(value, 1)),
          `${fixed(cpu / base, 2)} ×`,
          `${count(Math.min(...row.delivered))} of ${count(Number(sizes.fanoutEvents))}`,
        ]
      }),
    ),
  ].join('\n')
}

export function render(report: Report): string {
  const targets: Target[] = []
  const sections: string[] = []
  if (report.ingest) sections.push(ingestSection(report.ingest, report.batch ?? [], targets))
  if (report.worker) sections.push(workerSection(report.worker, report.sizes.workerJobs, targets))
  if (report.endToEnd) sections.push(endToEndSection(report.endToEnd, targets))
  if (report.growth) sections.push(growthSection(report.growth, targets))
  if (report.soak) sections.push(soakSection(report.soak, targets))
  if (report.fanout) sections.push(fanoutSection(report.fanout, report.sizes))
  const notes = join(ROOT, 'bench/NOTES.md')
  return [
    '# Benchmark results',
    '',
    ...(report.quick ? ['**Quick smoke run: sizes are tiny, the numbers mean nothing.**', ''] : []),
    `Written by \`npm run bench\` on ${report.date}: ${report.runs} run(s) of each measurement,`,
    `interleaved, ${report.seconds} s each after a warm-up.`,
    '',
    table(
      ['machine', ''],
      Object.entries(report.machine).map(([name, value]) => [name, String(value)]),
    ),
    '',
    'Method: the process under test (gateway or PHP worker) is pinned to CPU 0; Redis (AOF,',
    '`appendfsync everysec`, fresh data directory per run), the load generator and the driver',
    'share CPU 1. Every contender is measured the same way in the same run. The AOF is rewritten',
    'before each measurement and not during one (automatic rewrites off, except in the soak).',
    '',
    '## Targets',
    '',
    table(
      ['target', 'measured', ''],
      targets.map((target) => [target.goal, target.measured, mark(target.met)]),
    ),
    '',
    sections.join('\n\n'),
    '',
    existsSync(notes) ? readFileSync(notes, 'utf8') : '',
  ].join('\n')
}
