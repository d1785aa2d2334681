import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { startSentinelGateway } from './helpers/gateway.js'
import { GatewayProcess } from './helpers/gateway-process.js'
import { type Outcome, SubmissionLoad, sleep, until } from './helpers/load.js'
import { PhpWorker } from './helpers/php-worker.js'
import {
  DATA_PASSWORD,
  MASTER_NAME,
  RedisSentinelGroup,
  SENTINEL_LOGIN,
  type SentinelAuth,
} from './helpers/redis-sentinel.js'
import { freePort, type RedisServer } from './helpers/redis-server.js'
import { type Certificates, makeCertificates } from './helpers/tls.js'

/**
 * Redis Sentinel: the gateway and the PHP worker find the primary through a real sentinel and
 * follow it through a failover (ordered, and after the primary is killed) without a restart.
 */

/** Longest a request may take while Redis fails over: the command timeout plus slack. */
const REQUEST_BOUND_MS = 3000

/** `sentinels` lists what the gateway is told, in order: the group's sentinel unless given. */
async function setUp(
  t: Test,
  {
    auth = null as SentinelAuth | null,
    sentinels = (group: RedisSentinelGroup) => group.sentinels,
    tls = null as Certificates | null,
  } = {},
) {
  const group = await RedisSentinelGroup.start({ auth, tls })
  t.teardown(() => group.destroy())
  // 503s come fast: no rate limit, so that none of them turns into a 429.
  const gateway = await startSentinelGateway(t, group, {
    listen: true,
    env: {
      RATE_LIMIT: 'off',
      REDIS_SENTINELS: sentinels(group),
      ...(tls
        ? {
            REDIS_URL: 'rediss://ignored:1',
            REDIS_TLS_CA_FILE: tls.ca,
            REDIS_TLS_CERT_FILE: tls.clientCert,
            REDIS_TLS_KEY_FILE: tls.clientKey,
          }
        : {}),
    },
  })
  const dir = mkdtempSync(join(tmpdir(), 'jobgate-sentinel-'))
  const record = join(dir, 'runs.log')
  writeFileSync(record, '')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const worker = new PhpWorker({
    args: [
      `--sentinel=${group.sentinels}`,
      `--sentinel-master=${MASTER_NAME}`,
      ...workerLogin(group),
      ...(tls
        ? [
            '--redis=rediss://ignored:1',
            `--redis-tls-ca=${tls.ca}`,
            `--redis-tls-cert=${tls.clientCert}`,
            `--redis-tls-key=${tls.clientKey}`,
          ]
        : []),
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

function workerLogin(group: RedisSentinelGroup): string[] {
  const login = group.clientLogin
  if (!login) return []
  return [
    `--redis=redis://:${DATA_PASSWORD}@ignored:1`,
    ...(login.username ? [`--sentinel-username=${login.username}`] : []),
    `--sentinel-password=${login.password}`,
  ]
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

/**
 * Submits until a job the gateway accepted is on `primary` (a job taken in the moment before
 * the old primary steps down can be lost with it); its id, or undefined after `timeoutMs`.
 */
async function firstJobOn(
  primary: RedisServer,
  url: string,
  timeoutMs = 10_000,
): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const [id] = await submit(url, 1).catch(() => [])
    if (id && (await states(primary, [id]))[0] !== null) return id
    await sleep(50)
  }
  return undefined
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
  // The gateway asks a sentinel for the primary once a second: while it stays, nobody moves.
  const connections = () =>
    primary.ask(
      async (client) => /total_connections_received:(\d+)/.exec(await client.info('stats'))?.[1],
    )
  const before = await connections()
  await sleep(2500)
  t.equal(
    await connections(),
    String(Number(before) + 1),
    'no reconnect in 2.5 s (one: the asking client)',
  )
})

for (const auth of ['acl', 'password'] as const) {
  t.test(
    `with logins everywhere (sentinel ${auth}), gateway and worker find the primary and follow a failover`,
    async (t) => {
      // The data nodes require a password. The sentinel has ACL users only, and the one the
      // gateway and the worker log in as may do no more than a client of the group needs; or it
      // has requirepass.
      const { group, gateway, worker, runs } = await setUp(t, { auth })
      const user = group.clientLogin?.username ?? 'default'
      const before = await submit(gateway.url, 10)
      const old = await group.primary()
      t.ok(await allSucceeded(old, before), 'the jobs ran, in the primary the sentinel names')
      const clients = await group.sentinelClientList()
      t.ok(
        clients.some((client) => client.user === user && client.sub === '1'),
        'the gateway listens for failovers, logged in',
      )
      t.ok(
        clients.some(
          (client) => client.user === user && client.cmd === 'sentinel|get-master-addr-by-name',
        ),
        'the worker asked for the primary, logged in',
      )
      await group.replicated()

      const primary = await group.failover()
      const first = await firstJobOn(primary, gateway.url)
      t.ok(first, 'the gateway writes to the new primary')
      const after = [first ?? '', ...(await submit(gateway.url, 9))]
      t.ok(
        await allSucceeded(primary, after),
        'the jobs after the failover ran, on the new primary',
      )
      const ranAfter = runs().filter((run) => after.includes(run.id))
      t.strictSame(
        ranAfter.map((run) => run.id),
        after,
        'each once, in order',
      )
      t.ok(
        ranAfter.every((run) => run.pid === worker.pid),
        'by the same worker process',
      )
    },
  )
}

t.test('over TLS, gateway and worker reach the primary and follow a failover', async (t) => {
  // The data nodes listen only on TLS ports that want a client certificate from the private CA.
  const tls = makeCertificates()
  t.teardown(() => tls.remove())
  const { group, gateway, runs } = await setUp(t, { tls })
  const before = await submit(gateway.url, 5)
  const old = await group.primary()
  t.ok(await allSucceeded(old, before), 'the jobs ran, in the primary the sentinel names')
  await group.replicated()

  const primary = await group.failover()
  const first = await firstJobOn(primary, gateway.url)
  t.ok(first, 'the gateway writes to the new primary')
  const after = [first ?? '', ...(await submit(gateway.url, 4))]
  t.ok(await allSucceeded(primary, after), 'the jobs after the failover ran there')
  t.strictSame(
    runs()
      .map((run) => run.id)
      .filter((id) => before.includes(id) || after.includes(id)),
    [...before, ...after],
    'each once, in order',
  )
})

t.test(
  'a gateway that misses the failover announcement moves to the new primary within seconds',
  async (t) => {
    // The first sentinel the gateway knows is down: it asks the next one.
    const down = await freePort()
    const { group, gateway } = await setUp(t, {
      auth: 'acl',
      sentinels: (group) => `127.0.0.1:${down},${group.sentinels}`,
    })
    await submit(gateway.url, 1)
    // The gateway's sentinel user may no longer subscribe: Redis drops its subscription and the
    // watch cannot subscribe again, so no +switch-master reaches the gateway.
    await group.sentinel.ask((client) =>
      client.call('ACL', 'SETUSER', SENTINEL_LOGIN.username, 'resetchannels'),
    )
    const listening = async () =>
      (await group.sentinelClientList()).some(
        (client) => client.user === SENTINEL_LOGIN.username && client.sub !== '0',
      )
    const deadline = Date.now() + 5000
    while ((await listening()) && Date.now() < deadline) await sleep(20)
    t.notOk(await listening(), 'nothing listens for the failover')
    // And the old primary cannot be demoted (as when Sentinel cannot reach it): it goes on taking
    // writes, and nothing drops the gateway's connections to it.
    const old = await group.primary()
    await old.ask((client) => client.call('ACL', 'SETUSER', 'default', '-replicaof', '-slaveof'))

    const primary = await group.failover()
    const switched = Date.now()
    const first = await firstJobOn(primary, gateway.url, 5000)
    t.ok(first, 'the gateway asked a sentinel and moved to the new primary')
    t.comment(
      `the first job on the new primary was accepted ${Date.now() - switched} ms after the switch`,
    )
    const after = await submit(gateway.url, 5)
    t.notOk((await states(primary, after)).includes(null), 'and stays there')
    t.equal(
      await old.ask((client) => client.call('ROLE')).then((role) => (role as string[])[0]),
      'master',
      'while the old primary still takes writes',
    )
  },
)

t.test('a sentinel that refuses the watch its commands gets one warning each', async (t) => {
  const group = await RedisSentinelGroup.start({ auth: 'acl' })
  t.teardown(() => group.destroy())
  const gateway = await GatewayProcess.start({
    REDIS_URL: `redis://:${DATA_PASSWORD}@ignored:1`,
    REDIS_SENTINELS: group.sentinels,
    REDIS_SENTINEL_NAME: MASTER_NAME,
    REDIS_SENTINEL_USERNAME: SENTINEL_LOGIN.username,
    REDIS_SENTINEL_PASSWORD: SENTINEL_LOGIN.password,
    LOG_LEVEL: 'warn',
  })
  t.teardown(() => gateway.stop('SIGKILL'))
  await sleep(1500)
  t.strictSame(
    gateway.lines.filter((line) => line.sentinel),
    [],
    'nothing to say while the sentinel answers',
  )
  // As if its user lacked the two commands from the start.
  await group.sentinel.ask((client) =>
    client.call('ACL', 'SETUSER', SENTINEL_LOGIN.username, '-sentinel|master', 'resetchannels'),
  )
  const check = await gateway.waitForLog((line) => /SENTINEL MASTER/.test(line.msg), 5000)
  t.match(check, { sentinel: group.sentinels, err: { message: /NOPERM/ } })
  const subscribe = await gateway.waitForLog((line) => /\+switch-master/.test(line.msg), 5000)
  t.match(subscribe, { sentinel: group.sentinels, err: { message: /NOPERM/ } })
  await sleep(2500)
  t.equal(gateway.lines.filter((line) => line.sentinel).length, 2, 'once each, not once per check')
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
