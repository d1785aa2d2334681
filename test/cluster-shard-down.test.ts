import t from 'tap'
import { startClusterGateway } from './helpers/gateway.js'
import { PhpWorker } from './helpers/php-worker.js'
import { RedisCluster } from './helpers/redis-cluster.js'

/** A Redis Cluster with one master down and not failed over: the other shards go on serving. */

t.test('a worker of several queues goes on with those whose shard answers', async (t) => {
  const cluster = await RedisCluster.start(3, {
    nodeArgs: ['--cluster-require-full-coverage', 'no'],
  })
  t.teardown(() => cluster.destroy())
  // Two queues on different masters; the one to lose its master comes first in the worker's order.
  const masterOf = async (queue: string) =>
    (await cluster.serversOf(`jobgate:{${queue}}:stats`)).master
  const down = 'q0'
  const downMaster = await masterOf(down)
  let up = ''
  for (let i = 1; up === ''; i++) {
    if ((await masterOf(`q${i}`)) !== downMaster) up = `q${i}`
  }
  const upMaster = await masterOf(up)

  const { app } = await startClusterGateway(t, cluster)
  const ids: string[] = []
  for (let i = 0; i < 2; i++) {
    const res = await app.inject({
      method: 'POST',
      url: `/v1/queues/${up}/jobs`,
      payload: { type: 'echo', payload: { i }, delay_ms: 3000 },
    })
    t.equal(res.statusCode, 202)
    ids.push(res.json().id)
  }
  const seeds = cluster.nodes
    .filter((node) => node !== downMaster)
    .map((node) => `127.0.0.1:${node.port}`)
    .join(',')
  const worker = new PhpWorker({ queues: [down, up], args: [`--cluster=${seeds}`] })
  t.teardown(() => worker.signal('SIGKILL'))
  await worker.waitForLog((line) => line.msg === 'worker started')
  await downMaster.kill()

  const states = () =>
    Promise.all(
      ids.map((id) => upMaster.ask((client) => client.hget(`jobgate:{${up}}:job:${id}`, 'state'))),
    )
  let seen: (string | null)[] = []
  let ran = false
  for (const deadline = Date.now() + 30_000; !ran && Date.now() < deadline; ) {
    seen = await states()
    ran = seen.every((state) => state === 'succeeded')
    if (!ran) await new Promise((resolve) => setTimeout(resolve, 200))
  }
  t.ok(ran, `the jobs of ${up} ran while ${down}'s master was down: ${seen.join(', ')}`)
  t.ok(
    worker.lines.some((line) => line.msg === 'job succeeded'),
    'the worker ran them and keeps running',
  )
  t.equal(worker.running, true)
})
