import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { startSentinelGateway } from './helpers/gateway.js'
import { type Outcome, SubmissionLoad, sleep, until } from './helpers/load.js'
import { PhpWorker } from './helpers/php-worker.js'
import { MASTER_NAME, RedisSentinelGroup } from './helpers/redis-sentinel.js'
import type { RedisServer } from './helpers/redis-server.js'

/**
 * Redis Sentinel: the gateway and the PHP worker find the primary through a real sentinel and
 * follow it through a failover (ordered, and after the primary is killed) without a restart.
 */

/** Longest a request may take while Redis fails over: the command timeout plus slack. */
const REQUEST_BOUND_MS = 3000

async function setUp(t: Test) {
  const group = await RedisSentinelGroup.start()
  t.teardown(() => group.destroy())
  // 503s come fast: no rate limit, so that none of them turns into a 429.
  const gateway = await startSentinelGateway(t, group, { listen: true, env: { RATE_LIMIT: 'off' } })
  const dir = mkdtempSync(join(tmpdir(), 'jobgate-sentinel-'))
  const record = join(dir, 'runs.log')
  writeFileSync(record, '')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const worker = new PhpWorker({
    args: [
      `--sentinel=${group.sentinels}`,
      `--sentinel-master=${MASTER_NAME}`,
      '--lease=2',
      '--sleep=0.2',
    ],
    env: { JOBGATE_RECORD: record },
  })
  t.teardown(() => worker.stop())
  const runs = () =>
    readFileSync(record, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [id = '', attempt = '', pid = ''] = line.split(' ')
        return { id, attempt: Number(attempt), pid: Number(pid) }
      })
  return { group, gateway, worker, runs }
}

async function submit(url: string, count: number): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < count; i++) {
    const res = await fetch(`${url}/v1/queues/q/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'record' }),
    })
    if (res.status !== 202) throw new Error(`submit: ${res.status} ${await res.text()}`)
    ids.push(((await res.json()) as { id: string }).id)
  }
  return ids
}

function states(server: RedisServer, ids: string[]): Promise<(string | null)[]> {
  return server.ask((client) =>
    Promise.all(ids.map((id) => client.hget(`jobgate:{q}:job:${id}`, 'state'))),
  )
}

async function allSucceeded(server: RedisServer, ids: string[], timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const now = await states(server, ids)
    if (now.every((state) => state === 'succeeded')) return true
    if (Date.now() > deadline) return false
    await sleep(50)
  }
}

/** What a client saw while Redis failed over: only 202s, or 503 problems saying when to retry. */
function checkOutcomes(t: Test, outcomes: Outcome[]) {
  const unexpected = outcomes.filter(
    (outcome) =>
      !(
        outcome.status === 202 ||
        (outcome.status === 503 &&
          outcome.code === 'REDIS_UNAVAILABLE' &&
          Number(outcome.retryAfter) >= 1)
      ),
  )
  t.strictSame(unexpected, [], 'every answer a 202 or a 503 REDIS_UNAVAILABLE with Retry-After')
  const slowest = Math.max(...outcomes.map((outcome) => outcome.finished - outcome.started))
  t.ok(slowest < REQUEST_BOUND_MS, `no request took ${REQUEST_BOUND_MS} ms (slowest ${slowest})`)
}

t.test('through Sentinel, jobs go to the primary it names and a worker runs them', async (t) => {
  const { group, gateway, worker, runs } = await setUp(t)
  const ids = await submit(gateway.url, 20)
  const primary = await group.primary()
  t.ok(await allSucceeded(primary, ids), 'every job succeeded, in the primary')
  t.strictSame(
    runs().map((run) => run.id),
    ids,
    'each ran once, in order',
  )
  t.ok(
    runs().every((run) => run.pid === worker.pid),
    'by the worker',
  )
  await group.replicated()
  const replica = group.servers.find((server) => server !== primary) as RedisServer
  t.strictSame(
    await states(replica, ids),
    ids.map(() => 'succeeded'),
    'and on the replica',
  )
})

t.test('a closed gateway leaves no connection to the sentinel', async (t) => {
  const group = await RedisSentinelGroup.start()
  t.teardown(() => group.destroy())
  const idle = await group.sentinelClients()
  const gateway = await startSentinelGateway(t, group, { listen: true })
  await submit(gateway.url, 1)
  t.ok((await group.sentinelClients()) > idle, 'the gateway listens to the sentinel')
  await gateway.app.close()
  const deadline = Date.now() + 2000
  while ((await group.sentinelClients()) > idle && Date.now() < deadline) await sleep(20)
  t.equal(await group.sentinelClients(), idle, 'and closes those connections when it closes')
})

for (const how of ['SENTINEL FAILOVER', 'the primary killed'] as const) {
  t.test(`${how} under load: gateway and worker follow the new primary`, async (t) => {
    const { group, gateway, worker, runs } = await setUp(t)
    const before = await submit(gateway.url, 20)
    const old = await group.primary()
    t.ok(await allSucceeded(old, before), 'the jobs before ran')
    await group.replicated()

    const load = new SubmissionLoad(gateway.url, 4, {}, 10_000, 'record')
    await until(() => load.accepted().length >= 20, 10_000)
    let primary: RedisServer
    if (how === 'SENTINEL FAILOVER') {
      primary = await group.failover()
    } else {
      await old.kill()
      primary = await group.newPrimary(old)
    }
    const switched = Date.now()
    t.ok(
      await until(
        () => load.outcomes.some((o) => o.status === 202 && o.started > switched + 200),
        10_000,
      ),
      '202s resume without a restart',
    )
    await sleep(1000)
    const outcomes = await load.stop()
    t.comment(
      `${outcomes.filter((o) => o.status === 503).length} of ${outcomes.length} answers were 503s; ` +
        `202s resumed ${Math.min(...outcomes.filter((o) => o.status === 202 && o.started > switched).map((o) => o.finished)) - switched} ms after the sentinel named the new primary`,
    )
    checkOutcomes(t, outcomes)

    t.strictSame(
      await states(primary, before),
      before.map(() => 'succeeded'),
      'the jobs before the failover, replicated, are on the new primary',
    )
    const after = outcomes
      .filter((o) => o.status === 202 && o.started > switched + 200)
      .map((o) => o.id ?? '')
    t.ok(after.length > 0)
    t.ok(await allSucceeded(primary, after), 'every job accepted after the switch succeeded')
    const ranAfter = runs().filter((run) => after.includes(run.id))
    t.equal(ranAfter.length, after.length, 'each once')
    t.ok(
      ranAfter.every((run) => run.pid === worker.pid && run.attempt === 1),
      'by the same worker process, first attempt',
    )
    t.ok(worker.running, 'the worker never stopped')

    const during = outcomes.filter(
      (o) => o.status === 202 && o.started <= switched + 200 && !before.includes(o.id ?? ''),
    )
    const kept = await states(
      primary,
      during.map((o) => o.id ?? ''),
    )
    const lost = during.filter((_, index) => kept[index] === null)
    const sinceSwitch = (o: Outcome) => o.finished - switched
    t.comment(
      `${during.length - lost.length} of ${during.length} jobs accepted around the failover are on the new primary` +
        (lost.length > 0
          ? `; the lost ones were answered ${Math.min(...lost.map(sinceSwitch))} to ${Math.max(...lost.map(sinceSwitch))} ms from the switch`
          : ''),
    )
  })
}
