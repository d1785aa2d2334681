import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { startClusterGateway, startGateway } from './helpers/gateway.js'
import { until } from './helpers/load.js'
import { PhpWorker } from './helpers/php-worker.js'
import { RedisCluster } from './helpers/redis-cluster.js'
import { freePort, RedisServer } from './helpers/redis-server.js'
import { type Certificates, makeCertificates, tlsPortArgs } from './helpers/tls.js'

const JSON_HEADERS = { 'content-type': 'application/json' }

/**
 * A Redis whose TLS port requires a client certificate from the private CA; its plain port is
 * only for the tests' own look at the keyspace.
 */
/** One echo job per queue, each 202; the queues' keys land on at least two nodes. */
async function submitAcrossNodes(
  t: Test,
  app: FastifyInstance,
  cluster: RedisCluster,
  queues: readonly string[],
): Promise<string[]> {
  const ids: string[] = []
  for (const queue of queues) {
    const res = await app.inject({
      method: 'POST',
      url: `/v1/queues/${queue}/jobs`,
      headers: JSON_HEADERS,
      payload: { type: 'echo', payload: { queue } },
    })
    t.equal(res.statusCode, 202, queue)
    ids.push(res.json().id)
  }
  const holders = [...(await cluster.keysByNode()).values()].filter((keys) =>
    keys.some((key) => key.includes(':job:')),
  )
  t.ok(holders.length >= 2, `the jobs are on ${holders.length} nodes`)
  return ids
}

async function tlsRedis(
  t: Test,
): Promise<{ redis: RedisServer; tlsUrl: string; certs: Certificates }> {
  const certs = makeCertificates()
  t.teardown(() => certs.remove())
  const tlsPort = await freePort()
  const redis = await RedisServer.start({ args: tlsPortArgs(certs, tlsPort) })
  t.teardown(() => redis.destroy())
  return { redis, tlsUrl: `rediss://127.0.0.1:${tlsPort}`, certs }
}

t.test(
  'a gateway and a worker on a TLS-only port with a private CA and client certificates',
  async (t) => {
    const { redis, tlsUrl, certs } = await tlsRedis(t)
    const { app, client } = await startGateway(t, {
      redis,
      env: {
        REDIS_URL: tlsUrl,
        REDIS_TLS_CA_FILE: certs.ca,
        REDIS_TLS_CERT_FILE: certs.clientCert,
        REDIS_TLS_KEY_FILE: certs.clientKey,
      },
    })
    t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200)
    const res = await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      headers: { ...JSON_HEADERS, 'idempotency-key': 'over-tls' },
      payload: { type: 'echo', payload: { secret: 'sealed' } },
    })
    t.equal(res.statusCode, 202)
    const { id } = res.json()
    t.equal(await client.hget(`jobgate:{q}:job:${id}`, 'state'), 'queued', 'in Redis')

    const worker = new PhpWorker({
      redisUrl: tlsUrl,
      args: [
        `--redis-tls-ca=${certs.ca}`,
        `--redis-tls-cert=${certs.clientCert}`,
        `--redis-tls-key=${certs.clientKey}`,
      ],
    })
    t.teardown(() => worker.signal('SIGKILL'))
    await worker.waitForLog((line) => line.msg === 'job succeeded' && line.job_id === id)
    const status = await app.inject({ method: 'GET', url: `/v1/queues/q/jobs/${id}` })
    t.match(status.json(), { state: 'succeeded', result: { secret: 'sealed' } })
    worker.signal('SIGTERM')
    t.equal((await worker.exited).code, 0)
  },
)

t.test('without the private CA the gateway refuses the server and writes nothing', async (t) => {
  const { redis, tlsUrl, certs } = await tlsRedis(t)
  const { app, client } = await startGateway(t, {
    redis,
    env: {
      REDIS_URL: tlsUrl,
      REDIS_TLS_CERT_FILE: certs.clientCert,
      REDIS_TLS_KEY_FILE: certs.clientKey,
    },
  })
  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503, 'not ready: the certificate is not trusted')
  const res = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    headers: JSON_HEADERS,
    payload: { type: 'echo', payload: {} },
  })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.strictSame(await client.keys('jobgate:*'), [], 'nothing written')
})

t.test('a worker without a client certificate is turned away and runs nothing', async (t) => {
  const { redis, tlsUrl, certs } = await tlsRedis(t)
  const { app, client } = await startGateway(t, { redis })
  const res = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    headers: JSON_HEADERS,
    payload: { type: 'echo', payload: {} },
  })
  const { id } = res.json()
  const worker = new PhpWorker({ redisUrl: tlsUrl, args: [`--redis-tls-ca=${certs.ca}`] })
  t.teardown(() => worker.signal('SIGKILL'))
  t.ok(
    await until(
      () =>
        worker.lines.filter((line) => line.msg === 'redis unavailable, reconnecting').length >= 2,
      10_000,
    ),
    'it keeps trying',
  )
  t.equal(await client.hget(`jobgate:{q}:job:${id}`, 'state'), 'queued', 'the job still waits')
  t.notOk(worker.lines.some((line) => line.msg === 'job started'))
})

t.test(
  'a Redis Cluster over TLS with client certificates: the gateway and a worker follow its nodes',
  async (t) => {
    const certs = makeCertificates()
    t.teardown(() => certs.remove())
    const cluster = await RedisCluster.start(3, { tls: certs })
    t.teardown(() => cluster.destroy())
    const tls = {
      REDIS_TLS_CA_FILE: certs.ca,
      REDIS_TLS_CERT_FILE: certs.clientCert,
      REDIS_TLS_KEY_FILE: certs.clientKey,
    }
    const [firstSeed] = cluster.tlsSeeds.split(',')
    const { app, client } = await startClusterGateway(t, cluster, {
      env: { REDIS_CLUSTER_NODES: cluster.tlsSeeds, REDIS_URL: `rediss://${firstSeed}`, ...tls },
    })
    // Queues whose keys live on different nodes: every node is reached over TLS.
    const ids = await submitAcrossNodes(t, app, cluster, ['emails', 'sms', 'reports'])

    const worker = new PhpWorker({
      redisUrl: `rediss://${firstSeed}`,
      queues: ['emails', 'sms', 'reports'],
      args: [
        `--cluster=${cluster.tlsSeeds}`,
        `--redis-tls-ca=${certs.ca}`,
        `--redis-tls-cert=${certs.clientCert}`,
        `--redis-tls-key=${certs.clientKey}`,
      ],
    })
    t.teardown(() => worker.signal('SIGKILL'))
    for (const id of ids) {
      await worker.waitForLog((line) => line.msg === 'job succeeded' && line.job_id === id)
    }
    for (const [index, queue] of ['emails', 'sms', 'reports'].entries()) {
      t.equal(await client.hget(`jobgate:{${queue}}:job:${ids[index]}`, 'state'), 'succeeded')
    }
    worker.signal('SIGTERM')
    t.equal((await worker.exited).code, 0)
  },
)

t.test(
  'a TLS cluster whose certificates name only localhost, announced and seeded by that name',
  async (t) => {
    const certs = makeCertificates({ serverNames: 'DNS:localhost' })
    t.teardown(() => certs.remove())
    t.equal(
      new X509Certificate(readFileSync(certs.serverCert)).subjectAltName,
      'DNS:localhost',
      'no IP address in the certificate: only a connection by name passes its check',
    )
    // The bus still meets the nodes at 127.0.0.1; clients are told `localhost`.
    const cluster = await RedisCluster.start(3, {
      tls: certs,
      nodeArgs: [
        '--cluster-announce-hostname',
        'localhost',
        '--cluster-preferred-endpoint-type',
        'hostname',
      ],
    })
    t.teardown(() => cluster.destroy())
    const slots = (await cluster.nodes[0]?.ask((client) => client.cluster('SLOTS'))) as unknown as [
      number,
      number,
      [string, number],
    ][]
    t.strictSame(
      slots.map(([, , [host]]) => host),
      ['localhost', 'localhost', 'localhost'],
      'CLUSTER SLOTS names every master localhost',
    )

    const seeds = cluster.tlsSeedsAt('localhost')
    const [firstSeed] = seeds.split(',')
    const { app, client } = await startClusterGateway(t, cluster, {
      env: {
        REDIS_CLUSTER_NODES: seeds,
        REDIS_URL: `rediss://${firstSeed}`,
        REDIS_TLS_CA_FILE: certs.ca,
        REDIS_TLS_CERT_FILE: certs.clientCert,
        REDIS_TLS_KEY_FILE: certs.clientKey,
      },
    })
    // What the gateway's connections to the nodes report, to show in a failure.
    const trouble = new Set<string>()
    app.store.client.on('node error', (error: Error, node: string) => {
      trouble.add(`${node}: ${error.message}`)
    })
    await until(() => app.store.client.status === 'ready', 5000)
    const ready = await app.inject({ method: 'GET', url: '/readyz' })
    t.equal(ready.statusCode, 200, `ready${trouble.size ? `; ${[...trouble].join('; ')}` : ''}`)

    const queues = ['emails', 'sms', 'reports']
    const ids = await submitAcrossNodes(t, app, cluster, queues)

    const worker = new PhpWorker({
      redisUrl: `rediss://${firstSeed}`,
      queues,
      args: [
        `--cluster=${seeds}`,
        `--redis-tls-ca=${certs.ca}`,
        `--redis-tls-cert=${certs.clientCert}`,
        `--redis-tls-key=${certs.clientKey}`,
      ],
    })
    t.teardown(async () => {
      worker.signal('SIGKILL')
      await worker.exited
    })
    for (const id of ids) {
      await worker.waitForLog((line) => line.msg === 'job succeeded' && line.job_id === id)
    }
    for (const [index, queue] of queues.entries()) {
      const status = await app.inject({
        method: 'GET',
        url: `/v1/queues/${queue}/jobs/${ids[index]}`,
      })
      t.equal(status.statusCode, 200)
      t.equal(status.json().state, 'succeeded', queue)
      t.strictSame(status.json().result, { queue })
      t.equal(await client.hget(`jobgate:{${queue}}:job:${ids[index]}`, 'state'), 'succeeded')
    }
    worker.signal('SIGTERM')
    t.equal((await worker.exited).code, 0)
  },
)
