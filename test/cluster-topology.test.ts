import { execFile, spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import t from 'tap'
import { ROOT } from '../src/paths.js'
import { startClusterGateway } from './helpers/gateway.js'
import { PhpWorker } from './helpers/php-worker.js'
import { RedisCluster } from './helpers/redis-cluster.js'

/**
 * A Redis Cluster whose slots move while a worker runs: a reshard onto a new node, with the ASK
 * and MOVED replies it brings. (phpredis 5.3's own cluster client crashed the worker with a
 * segmentation fault at the MOVED reply that follows an ASK.)
 */

t.test(
  'a worker follows its queue to a new node (a reshard) and runs its jobs there',
  async (t) => {
    const cluster = await RedisCluster.start(3)
    t.teardown(() => cluster.destroy())
    const { app } = await startClusterGateway(t, cluster)
    // Waits of 200 ms: the idle worker asks the queue's node five times a second.
    const worker = new PhpWorker({
      queues: ['q'],
      args: [`--cluster=${cluster.seeds}`, '--sleep=0.2'],
    })
    t.teardown(() => worker.signal('SIGKILL'))
    await worker.waitForLog((line) => line.msg === 'worker started')

    // The queue holds no key yet: through a second of the slot migrating, every call of the
    // worker is answered ASK (its keys are not on the old node), then MOVED.
    const added = await cluster.addEmptyMaster()
    await cluster.moveSlotOf('jobgate:{q}:stats', added, 1000)
    t.equal((await cluster.serversOf('jobgate:{q}:stats')).master, added, 'the queue moved')
    const res = await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      payload: { type: 'echo', payload: { n: 1 } },
    })
    t.equal(res.statusCode, 202)
    const id: string = res.json().id
    await worker.waitForLog((line) => line.msg === 'job succeeded' && line.job_id === id, 20_000)
    t.equal(worker.running, true, 'the worker still runs')
    t.strictSame(
      await added.ask((client) => client.hmget(`jobgate:{q}:job:${id}`, 'state', 'attempts')),
      ['succeeded', '1'],
      'on the new node, run once',
    )
  },
)

t.test(
  'calls on a slot being moved are answered through ASK, then MOVED, without a crash',
  async (t) => {
    const cluster = await RedisCluster.start(3)
    t.teardown(() => cluster.destroy())
    const added = await cluster.addEmptyMaster()
    // The exact sequence that crashed phpredis 5.3's RedisCluster (a segmentation fault): calls
    // on a key absent from the old node (ASK) through the migration, then the slot's new owner.
    const calls = promisify(execFile)(
      'php',
      [join(ROOT, 'test/fixtures/cluster-calls.php'), cluster.seeds, '4'],
      { timeout: 30_000 },
    )
    await new Promise((resolve) => setTimeout(resolve, 1000))
    await cluster.moveSlotOf('{q}:probe', added, 1000)
    const { stdout } = await calls
    const outcomes = stdout.trim().split('\n')
    t.ok(outcomes.length > 40, `the calls went on to the end (${outcomes.length})`)
    t.equal(outcomes.at(-1), 'ok', 'the last ones answered by the new node')
    t.strictSame(
      outcomes.filter((line) => line !== 'ok' && !line.startsWith('unavailable ASK ')),
      [],
      'every call answered, or waited out while the slot migrated',
    )
  },
)

t.test('a call on a slot that moved since the slots were read follows MOVED at once', async (t) => {
  const cluster = await RedisCluster.start(3)
  t.teardown(() => cluster.destroy())
  const added = await cluster.addEmptyMaster()
  const php = spawn('php', [join(ROOT, 'test/fixtures/cluster-calls.php'), cluster.seeds, 'lines'])
  t.teardown(() => php.kill('SIGKILL'))
  const lines = createInterface({ input: php.stdout })[Symbol.asyncIterator]()
  const call = async () => {
    php.stdin.write('\n')
    return (await lines.next()).value
  }
  t.equal(await call(), 'ok', 'the slots read, the call answered by the old owner')
  // No call while the slot migrates (no ASK): the next one goes where the slots said it was.
  await cluster.moveSlotOf('{q}:probe', added)
  t.equal(await call(), 'ok', 'MOVED followed to the new owner, not taken for an outage')
  t.equal(await call(), 'ok')
  php.stdin.end()
})

t.test('a worker follows its queue through a failover and a failover back', async (t) => {
  const cluster = await RedisCluster.start(3, { replicas: 1 })
  t.teardown(() => cluster.destroy())
  const { app } = await startClusterGateway(t, cluster)
  const worker = new PhpWorker({
    queues: ['q'],
    args: [`--cluster=${cluster.seeds}`, '--sleep=0.5'],
  })
  t.teardown(() => worker.signal('SIGKILL'))
  const until = async (done: () => Promise<boolean>, what: string) => {
    for (const deadline = Date.now() + 30_000; !(await done()); ) {
      if (Date.now() > deadline) throw new Error(`${what}: not within 30 s`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  // Submitted until a 202 (the gateway answers 503 while the shard fails over), then run.
  const runOne = async (n: number) => {
    let id = ''
    await until(async () => {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/queues/q/jobs',
        headers: { 'idempotency-key': `failover-${n}` },
        payload: { type: 'echo', payload: { n } },
      })
      id = res.statusCode === 202 ? res.json().id : ''
      return id !== ''
    }, 'a 202')
    await worker.waitForLog((line) => line.msg === 'job succeeded' && line.job_id === id, 30_000)
  }
  const role = async (node: { ask: RedisCluster['nodes'][number]['ask'] }) =>
    String((await node.ask((client) => client.role()))[0])

  await runOne(0)
  const { master, replicas } = await cluster.serversOf('jobgate:{q}:stats')
  const replica = replicas[0]
  if (!replica) throw new Error('the queue has a replica')
  await master.kill()
  await until(async () => (await role(replica)) === 'master', 'the replica promoted')
  await runOne(1)
  t.pass('a job ran after the failover')

  // The old master back, as the new one's replica, then its master again (CLUSTER FAILOVER FORCE):
  // the slot moves to a node the worker lost its connection to.
  await master.spawn()
  await until(
    async () =>
      /master_link_status:up/.test(await master.ask((client) => client.info('replication'))),
    'the old master replicating',
  )
  await master.ask((client) => client.call('CLUSTER', 'FAILOVER', 'FORCE'))
  await until(async () => (await role(master)) === 'master', 'the failover back')
  await runOne(2)
  t.pass('a job ran after the failover back')
  t.equal(worker.running, true, 'the worker still runs')
  t.equal(
    worker.lines.filter((line) => line.msg === 'job succeeded').length,
    3,
    'each job ran once',
  )
})
