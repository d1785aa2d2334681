import t, { type Test } from 'tap'
import { startGateway } from './helpers/gateway.js'
import { until } from './helpers/load.js'
import { PhpWorker } from './helpers/php-worker.js'
import { freePort, RedisServer } from './helpers/redis-server.js'
import { type Certificates, makeCertificates, tlsPortArgs } from './helpers/tls.js'

const JSON_HEADERS = { 'content-type': 'application/json' }

/**
 * A Redis whose TLS port requires a client certificate from the private CA; its plain port is
 * only for the tests' own look at the keyspace.
 */
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
