import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseWrk } from '../bench/lib/wrk.js'
import { ROOT } from '../src/paths.js'

/**
 * The benchmark suite never runs in CI; this runs its harness once at toy sizes so that it
 * cannot rot: real gateway, real PHP workers, the Markdown report.
 */
t.test('bench --quick: worker, end-to-end and fan-out scenarios, and the report', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jobgate-bench-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const out = join(dir, 'RESULTS.md')
  // `env -u`: tap adds its own loader to NODE_OPTIONS of every child, which the build chokes on.
  const bench = (...args: string[]) =>
    spawnSync(
      'env',
      ['-u', 'NODE_OPTIONS', process.execPath, '--import', 'tsx', 'bench/run.ts', ...args],
      { encoding: 'utf8', timeout: 120_000 },
    )
  const run = bench('--quick', '--only=worker,e2e,fanout', `--out=${out}`)
  t.equal(run.status, 0, run.stderr)
  t.match(run.stderr, /\[1\/7\] worker: BRPOP loop, run 1\/1/, 'progress on stderr')
  t.match(run.stderr, /\[7\/7[\],]/, 'the steps counted right')
  const report = readFileSync(out, 'utf8')
  t.match(report, /^# Benchmark results/)
  t.match(report, /\| php \| 8\.\d+\.\d+/, 'machine info')
  t.match(report, /\| jobgate-worker \| [\d,]+ \|/, 'a worker row with a rate')
  t.match(report, /\| jobgate-worker, 2 queues \| [\d,]+ \|/, 'and one for a worker of two queues')
  t.match(report, /\| jobgate-worker, HTTP transport \| [\d,]+ \|/, 'and one over HTTP')
  t.match(report, /\| worker ≥ 0\.5 × bare BRPOP loop \| [\d.]+ × \| (met|\*\*not met\*\*) \|/)
  t.match(report, /\| 200 \| \d+ \| \d+ \|/, 'every end-to-end job finished, with latencies')
  t.match(
    report,
    /\| 3 \| [\d.]+ \| [^|]* \| [\d.]+ × \| 500 of 500 \|/,
    'every watcher got every entry',
  )
  const measured = JSON.parse(readFileSync(join(dir, 'RESULTS.json'), 'utf8'))
  t.equal(measured.sizes.workerJobs, 200, 'the measurements are saved beside the report')
  rmSync(out)
  const rendered = bench('--render', `--out=${out}`)
  t.equal(rendered.status, 0, rendered.stderr)
  t.equal(readFileSync(out, 'utf8'), report, '--render writes the same report from them')
  t.end()
})

t.test("wrk's report is read as it prints it, errors by kind", async (t) => {
  // Captured from Debian's wrk 4.1 against a server that answered some requests with 500
  // and some after the 1 s timeout.
  const report = readFileSync(join(ROOT, 'test/fixtures/wrk-report.txt'), 'utf8')
  t.strictSame(parseWrk(report), {
    requests: 396,
    rps: 197.41,
    p50Ms: 0.114,
    p99Ms: 5.3,
    errors: 60,
    errorKinds: { non2xx: 56, connect: 0, read: 0, write: 0, timeout: 4 },
  })
})
