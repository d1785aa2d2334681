/**
 * jobgate's benchmarks, side by side with their baselines in one run; writes bench/RESULTS.md.
 *
 *   npm run bench -- [--runs=3] [--seconds=10] [--only=ingest,worker,…] [--quick] [--out=FILE]
 *   npm run bench -- --help
 *
 * The measurements are also saved beside the Markdown (`bench/RESULTS.json`); `--render`
 * writes the Markdown again from them, with the current bench/NOTES.md, without measuring.
 *
 * `--compare=<git revision>` (repeatable) also measures that revision of jobgate (gateway and
 * PHP worker) in the ingest and worker scenarios, built in a temporary worktree: what the
 * changes since then bought.
 *
 * The soak runs at half the ingest scenario's median rate for jobgate, or at `--soak-rate=<req/s>`.
 *
 * Scenarios: ingest, batch, worker, e2e, growth, soak, fanout. `--quick` is a smoke run of the harness
 * (tiny sizes, results not meaningful).
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, relative } from 'node:path'
import { parseArgs } from 'node:util'
import { type Gateway, JOBGATE, JOBGATE_MINIMAL, jobgateAt } from './lib/contenders.js'
import { INFRA_CPU, ROOT, tempDir } from './lib/proc.js'
import { Progress } from './lib/progress.js'
import { BenchRedis } from './lib/redis.js'
import { median } from './lib/stats.js'
import { type Report, render } from './report.js'
import { endToEnd } from './scenarios/end-to-end.js'
import { fanout } from './scenarios/fanout.js'
import { growth } from './scenarios/growth.js'
import { type IngestRow, ingest, measure } from './scenarios/ingest.js'
import { soak } from './scenarios/soak.js'
import { type ComparedWorker, workerThroughput } from './scenarios/worker.js'

const SCENARIOS = ['ingest', 'batch', 'worker', 'e2e', 'growth', 'soak', 'fanout'] as const
type Scenario = (typeof SCENARIOS)[number]

const USAGE = `Usage: npm run bench -- [options]

Runs each scenario side by side with its baselines and writes bench/RESULTS.md (and .json).

  --only=LIST        scenarios to run, comma-separated: ${SCENARIOS.join(', ')} (default all)
  --runs=N           runs of each measurement, interleaved (default 3)
  --seconds=N        length of each timed measurement (default 10)
  --compare=REV      also measure jobgate at this git revision (repeatable)
  --soak-rate=N      requests/s of the soak (default half the ingest median)
  --out=FILE         where to write the Markdown (default bench/RESULTS.md)
  --render           write the Markdown again from the saved measurements; measure nothing
  --quick            a smoke run of the harness (tiny sizes, results not meaningful)
  --help             this text
`

function options() {
  try {
    return parseArgs({
      options: {
        runs: { type: 'string', default: '3' },
        seconds: { type: 'string', default: '10' },
        only: { type: 'string' },
        quick: { type: 'boolean', default: false },
        out: { type: 'string', default: join(ROOT, 'bench/RESULTS.md') },
        compare: { type: 'string', multiple: true, default: [] },
        render: { type: 'boolean', default: false },
        'soak-rate': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n\n${USAGE}`)
    process.exit(64)
  }
}

const values = options()
if (values.help) {
  process.stdout.write(USAGE)
  process.exit(0)
}

const out = values.out ?? join(ROOT, 'bench/RESULTS.md')
const measurementsFile = out.replace(/(\.md)?$/, '.json')
if (values.render) {
  writeFileSync(out, render(JSON.parse(readFileSync(measurementsFile, 'utf8')) as Report))
  process.stderr.write(`wrote ${out} from ${measurementsFile}\n`)
  process.exit(0)
}

const quick = values.quick ?? false
const only = new Set((values.only ?? SCENARIOS.join(',')).split(',').map((name) => name.trim()))
for (const name of only) {
  if (!(SCENARIOS as readonly string[]).includes(name)) {
    process.stderr.write(`bench: unknown scenario ${name}; choose from ${SCENARIOS.join(', ')}\n`)
    process.exit(64)
  }
}
const wanted = (scenario: Scenario) => only.has(scenario)

/** A whole number of at least 1 for `--<name>`; anything else stops with the usage. */
function positive(name: string, value: string | undefined): number {
  const number = Number(value)
  if (!Number.isSafeInteger(number) || number < 1) {
    process.stderr.write(
      `bench: --${name} must be a whole number of at least 1 (got "${value}")\n\n${USAGE}`,
    )
    process.exit(64)
  }
  return number
}

const runs = quick ? 1 : positive('runs', values.runs)
const seconds = quick ? 1 : positive('seconds', values.seconds)
const soakRate =
  values['soak-rate'] === undefined ? null : positive('soak-rate', values['soak-rate'])

/** The tools the wanted scenarios run, checked before anything is started. */
const NEEDS: Record<string, readonly Scenario[]> = {
  wrk: ['ingest', 'batch', 'growth'],
  valgrind: ['growth'],
  php: ['worker', 'e2e', 'growth'],
  'redis-server': SCENARIOS,
}
const missing = Object.entries(NEEDS)
  .filter(([, scenarios]) => scenarios.some(wanted))
  .map(([tool]) => tool)
  .filter((tool) => {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
      return false
    } catch {
      return true
    }
  })
if (missing.length > 0) {
  process.stderr.write(
    `bench: ${missing.join(', ')} not found; \`./dev bench\` installs what the benchmarks need\n`,
  )
  process.exit(69)
}

const warmupSeconds = quick ? 1 : 3
const sizes = {
  workerJobs: quick ? 200 : 20_000,
  depths: quick ? [100, 1000] : [1000, 100_000, 1_000_000],
  queueCounts: quick ? [1, 3] : [1, 10, 100],
  e2eRate: quick ? 100 : 1000,
  e2eSeconds: quick ? 2 : 20,
  soakSeconds: quick ? 12 : 300,
  countedCalls: quick ? 50 : 1000,
  fanoutWatchers: quick ? [1, 3] : [1, 10, 100],
  fanoutEvents: quick ? 500 : 40_000,
  fanoutRate: quick ? 1000 : 10_000,
}

function version(command: string, args: string[], pattern: RegExp): string {
  let out: string
  try {
    out = execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (error) {
    // `wrk -v` prints its version, then exits non-zero.
    out = String((error as { stdout?: unknown }).stdout ?? '')
  }
  return pattern.exec(out)?.[1] ?? 'not found'
}

/** A git revision of jobgate, built in a temporary worktree that shares node_modules. */
function buildRevision(revision: string): {
  gateway: Gateway
  worker: ComparedWorker
  remove(): void
} {
  const dir = tempDir('jobgate-bench-rev-')
  const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, stdio: 'ignore' })
  git('worktree', 'add', '--detach', dir.path, revision)
  symlinkSync(join(ROOT, 'node_modules'), join(dir.path, 'node_modules'))
  execFileSync(
    process.execPath,
    [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: dir.path,
      stdio: 'inherit',
    },
  )
  const short = execFileSync('git', ['rev-parse', '--short', revision], {
    cwd: ROOT,
    encoding: 'utf8',
  }).trim()
  return {
    gateway: jobgateAt(dir.path, `jobgate @ ${short}`),
    worker: { name: `jobgate-worker @ ${short}`, root: dir.path },
    remove: () => {
      git('worktree', 'remove', '--force', dir.path)
      dir.remove()
    },
  }
}

const compared = (values.compare ?? []).map(buildRevision)
process.on('exit', () => {
  for (const revision of compared) revision.remove()
})

const steps =
  (wanted('ingest') ? runs * (6 + compared.length) : 0) +
  (wanted('batch') ? runs * 2 : 0) +
  (wanted('worker') ? runs * (1 + 3 * (1 + compared.length)) : 0) +
  (wanted('e2e') ? 1 : 0) +
  (wanted('growth') ? (sizes.depths.length + sizes.queueCounts.length) * (runs + 1) : 0) +
  (wanted('soak') ? 1 : 0) +
  (wanted('fanout') ? runs * sizes.fanoutWatchers.length : 0)
const progress = new Progress(steps)

// The driver (fills, steady loads) shares the infrastructure core with Redis and wrk.
execFileSync('taskset', ['-a', '-pc', INFRA_CPU, String(process.pid)], { stdio: 'ignore' })
execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' })

const redis = await BenchRedis.start()
const report: Report = {
  date: new Date().toISOString(),
  quick,
  runs,
  seconds,
  machine: {
    cpu: cpus()[0]?.model ?? '?',
    cores: cpus().length,
    node: process.version,
    php: version('php', ['-v'], /^PHP (\S+)/),
    phpredis: version('php', ['-r', 'echo phpversion("redis");'], /^(\S+)/),
    redis: await redis.version(),
    wrk: version('wrk', ['-v'], /wrk (\S+)/),
    kernel: version('uname', ['-r'], /^(\S+)/),
  },
  sizes,
}
try {
  if (wanted('ingest')) {
    report.ingest = await ingest(
      redis,
      progress,
      { runs, seconds, warmupSeconds },
      compared.map((revision) => revision.gateway),
    )
  }
  if (wanted('batch')) {
    const rows: IngestRow[] = [
      { gateway: { ...JOBGATE, name: 'jobgate, batches of 100' }, runs: [] },
      {
        gateway: { ...JOBGATE_MINIMAL, name: 'jobgate, batches of 100, return=minimal' },
        runs: [],
      },
    ]
    for (let run = 1; run <= runs; run++) {
      for (const row of rows) {
        progress.step(`batch: ${row.gateway.name}, run ${run}/${runs}`)
        const result = await measure(row.gateway, redis, {
          runs,
          seconds,
          warmupSeconds,
          script: 'post-batch.lua',
          wrkEnv: { WRK_BATCH: '100' },
        })
        row.runs.push(result)
        progress.note(`${Math.round(result.rps * 100)} jobs/s, p99 ${result.p99Ms} ms`)
      }
    }
    report.batch = rows
  }
  if (wanted('worker')) {
    report.worker = await workerThroughput(
      redis,
      progress,
      { runs, jobs: sizes.workerJobs },
      compared.map((revision) => revision.worker),
    )
  }
  if (wanted('e2e')) {
    report.endToEnd = await endToEnd(redis, progress, {
      rate: sizes.e2eRate,
      seconds: sizes.e2eSeconds,
    })
  }
  if (wanted('growth')) {
    report.growth = await growth(progress, {
      runs,
      seconds,
      warmupSeconds,
      workerJobs: sizes.workerJobs,
      depths: sizes.depths,
      queueCounts: sizes.queueCounts,
      countedCalls: sizes.countedCalls,
    })
  }
  if (wanted('fanout')) {
    report.fanout = await fanout(redis, progress, {
      runs,
      watchers: sizes.fanoutWatchers,
      events: sizes.fanoutEvents,
      rate: sizes.fanoutRate,
    })
  }
  if (wanted('soak')) {
    const jobgate = report.ingest?.find((row) => row.gateway === JOBGATE)
    const peak = jobgate ? median(jobgate.runs.map((run) => run.rps)) : 4000
    const rate = soakRate ?? (quick ? 200 : peak) / 2
    report.soak = await soak(redis, progress, {
      rate: Math.round(rate),
      seconds: sizes.soakSeconds,
      // A fresh gateway's heap grows to its working size until the first full garbage
      // collection, 30–40 s into this load: the warm-up ends after it (bench/NOTES.md).
      warmupSeconds: quick ? 5 : 60,
    })
  }
} finally {
  await redis.stop()
}
// The bench's throwaway API key stays out of the file.
const withoutKeys = (key: string, value: unknown) => (key === 'apiKey' ? undefined : value)
writeFileSync(measurementsFile, `${JSON.stringify(report, withoutKeys, 1)}\n`)
if (!relative(ROOT, measurementsFile).startsWith('..')) {
  // In the layout the lint step (part of the test command) expects of a committed file.
  try {
    execFileSync(join(ROOT, 'node_modules/.bin/biome'), ['format', '--write', measurementsFile], {
      stdio: 'ignore',
    })
  } catch {
    process.stderr.write(`could not format ${measurementsFile}; run: npx biome format --write\n`)
  }
}
writeFileSync(out, render(report))
process.stderr.write(`wrote ${out} and ${measurementsFile}\n`)
