import { Agent, request } from 'node:http'
import { connect } from 'node:net'
import t from 'tap'
import { startGateway } from './helpers/gateway.js'
import { gatewayOnOwnRedis } from './helpers/gateway-process.js'
import { SubmissionLoad, until } from './helpers/load.js'

t.test(
  'SIGTERM under load: every 202 has its job, new connections are refused, exit 0',
  async (t) => {
    const { redis, gateway } = await gatewayOnOwnRedis(t)

    const load = new SubmissionLoad(gateway.url, 16)
    // Under way, however slow the machine: enough 202s before the signal.
    const accepting = await until(
      () => load.outcomes.filter((outcome) => outcome.status === 202).length > 50,
      10_000,
    )
    t.ok(accepting, 'the load was accepted before the signal')
    gateway.child.kill('SIGTERM')
    const { code, signal } = await gateway.exited
    const outcomes = await load.stop()

    t.equal(code, 0, 'exit 0')
    t.equal(signal, null)
    const refused = await fetch(`${gateway.url}/healthz`).then(
      () => false,
      () => true,
    )
    t.ok(refused, 'no longer accepting connections')
    const statuses = new Set(outcomes.map((outcome) => outcome.status))
    t.notOk(statuses.has(500), 'no 500s')
    t.ok(
      outcomes
        .filter((outcome) => outcome.status === 503)
        .every((outcome) => outcome.code === 'SHUTTING_DOWN'),
      'a 503 during the drain is a SHUTTING_DOWN problem, never another failure',
    )
    const accepted = outcomes.filter((outcome) => outcome.status === 202)
    t.ok(accepted.length > 50, `jobs were accepted (${accepted.length})`)
    const client = redis.client()
    t.teardown(() => client.disconnect())
    const pipeline = client.pipeline()
    for (const outcome of accepted) pipeline.hget(`jobgate:{q}:job:${outcome.id}`, 'payload')
    const payloads = (await pipeline.exec())?.map(([, payload]) => payload)
    t.strictSame(
      payloads,
      accepted.map((outcome) => JSON.stringify({ key: outcome.key })),
      'zero 202s without their job',
    )
  },
)

t.test('a request in flight at SIGTERM is answered with Connection: close; exit 0', async (t) => {
  const { gateway } = await gatewayOnOwnRedis(t, { env: { SHUTDOWN_TIMEOUT: '10s' } })
  // A pooled connection the client keeps open, as a load balancer's upstream pool does.
  const agent = new Agent({ keepAlive: true, keepAliveMsecs: 60_000 })
  t.teardown(() => agent.destroy())
  const answer = new Promise<{ status: number; connection: string | undefined }>(
    (resolve, reject) => {
      const req = request(
        `${gateway.url}/v1/queues/q/jobs:reserve`,
        { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
        (res) => {
          res.resume()
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }),
          )
        },
      )
      req.on('error', reject)
      req.end(JSON.stringify({ worker: 'w', wait_ms: 20_000 }))
    },
  )
  await new Promise((resolve) => setTimeout(resolve, 500)) // the poll is waiting by then
  const signalled = Date.now()
  gateway.child.kill('SIGTERM')
  t.strictSame(await answer, { status: 204, connection: 'close' }, 'the long poll ends at once')
  const { code } = await gateway.exited
  t.equal(code, 0, 'exit 0: the idle kept-alive connection did not hold the shutdown')
  t.ok(Date.now() - signalled < 5_000, `exited ${Date.now() - signalled} ms after the signal`)
})

t.test(
  'SIGTERM under keep-alive load: a request on a kept-alive connection is answered, not reset',
  async (t) => {
    const { gateway } = await gatewayOnOwnRedis(t)
    const agent = new Agent({ keepAlive: true, maxSockets: 32 })
    t.teardown(() => agent.destroy())
    const outcomes: { status: number | string; reused: boolean }[] = []
    let running = true
    const post = () =>
      new Promise<void>((resolve) => {
        const req = request(
          `${gateway.url}/v1/queues/q/jobs`,
          { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
          (res) => {
            res.resume()
            res.on('end', () => {
              outcomes.push({ status: res.statusCode ?? 0, reused: req.reusedSocket })
              resolve()
            })
          },
        )
        req.on('error', (error: NodeJS.ErrnoException) => {
          outcomes.push({ status: error.code ?? 'error', reused: req.reusedSocket })
          running = false
          resolve()
        })
        req.end('{"type":"t"}')
      })
    const loops = Array.from({ length: 32 }, async () => {
      while (running) await post()
    })
    t.ok(await until(() => outcomes.length > 500, 10_000), 'the load was under way')
    gateway.child.kill('SIGTERM')
    const { code } = await gateway.exited
    running = false
    await Promise.all(loops)

    t.equal(code, 0, 'exit 0')
    const resets = outcomes.filter(
      (outcome) => outcome.reused && typeof outcome.status === 'string',
    )
    t.strictSame(resets, [], 'no request sent on a kept-alive connection lost its answer')
    const statuses = new Set(outcomes.map((outcome) => outcome.status))
    t.ok(statuses.has(503), 'requests after the signal got 503 SHUTTING_DOWN')
  },
)

t.test(
  'bodies still arriving halfway through SHUTDOWN_TIMEOUT get 503 and do not hold the exit',
  async (t) => {
    const { redis, gateway } = await gatewayOnOwnRedis(t, { env: { SHUTDOWN_TIMEOUT: '4s' } })
    const port = Number(new URL(gateway.url).port)
    const head = (length: number) =>
      'POST /v1/queues/q/jobs HTTP/1.1\r\nhost: gateway\r\n' +
      `content-type: application/json\r\ncontent-length: ${length}\r\n\r\n`
    const open = (first: string) => {
      const socket = connect(port, '127.0.0.1')
      let received = ''
      socket.on('data', (chunk) => {
        received += chunk.toString()
      })
      socket.on('error', () => undefined) // a reset is one of the outcomes looked at below
      const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(received)))
      socket.write(first)
      return { socket, closed }
    }
    // One client stalls in the middle of its body, one trickles a byte every 100 ms.
    const stalled = open(`${head(100)}{"type":"t","payload":{"pad":"`)
    const trickling = open(`${head(10_000)}{"type":"t","payload":{"pad":"`)
    const trickle = setInterval(() => trickling.socket.write('x'), 100)
    t.teardown(() => clearInterval(trickle))
    await new Promise((resolve) => setTimeout(resolve, 300))
    const signalled = Date.now()
    gateway.child.kill('SIGTERM')
    const { code } = await gateway.exited
    const took = Date.now() - signalled
    clearInterval(trickle)

    t.equal(code, 0, 'exit 0, not the timeout')
    t.ok(took >= 1_900, `exited ${took} ms after the signal: the bodies had 2 s to arrive`)
    const answer = await stalled.closed
    t.match(answer, /^HTTP\/1\.1 503 /, 'the stalled body got 503')
    t.match(answer, /\r\nconnection: close\r\n/i)
    t.match(answer, /\r\nretry-after: 1\r\n/i)
    t.match(answer, /"code":"SHUTTING_DOWN"/)
    t.ok(
      trickling.socket.destroyed || (await trickling.closed) !== undefined,
      'trickling one ended',
    )
    await trickling.closed
    const client = redis.client()
    t.teardown(() => client.disconnect())
    t.strictSame(await client.keys('jobgate:{q}:job:*'), [], 'no job was written')
  },
)

t.test(
  'a repeated signal during the drain is logged, not obeyed: the drain finishes, exit 0',
  async (t) => {
    const { redis, gateway } = await gatewayOnOwnRedis(t, { env: { SHUTDOWN_TIMEOUT: '4s' } })
    const port = Number(new URL(gateway.url).port)
    // A body that stalls keeps the drain going for half of SHUTDOWN_TIMEOUT.
    const socket = connect(port, '127.0.0.1')
    let received = ''
    socket.on('data', (chunk) => {
      received += chunk.toString()
    })
    socket.on('error', () => undefined)
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
    socket.write(
      'POST /v1/queues/q/jobs HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n' +
        'content-length: 100\r\n\r\n{"type":"t",',
    )
    await new Promise((resolve) => setTimeout(resolve, 300))
    gateway.child.kill('SIGTERM')
    await new Promise((resolve) => setTimeout(resolve, 300))
    gateway.child.kill('SIGTERM')
    gateway.child.kill('SIGINT')
    const { code, signal } = await gateway.exited
    await closed

    t.equal(signal, null, 'not killed by the second signal')
    t.equal(code, 0, 'exit 0: the app closed, Redis with it')
    t.match(received, /^HTTP\/1\.1 503 /, 'the stalled request got its answer')
    t.equal(
      gateway.lines.filter((line) => line.msg === 'already shutting down: the drain goes on')
        .length,
      2,
    )
    const client = redis.client()
    t.teardown(() => client.disconnect())
    t.strictSame(await client.keys('jobgate:{q}:job:*'), [])
  },
)

t.test('readiness once a shutdown began: 503 SHUTTING_DOWN, as openapi.yaml says', async (t) => {
  const { app, url, checker } = await startGateway(t, { listen: true })
  const agent = new Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  const get = (path: string) =>
    new Promise<{ status: number; retryAfter: unknown; body: string }>((resolve, reject) => {
      request(`${url}${path}`, { agent }, (res) => {
        let body = ''
        res.on('data', (chunk: Buffer) => {
          body += chunk.toString()
        })
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body }),
        )
      })
        .on('error', reject)
        .end()
    })
  t.equal((await get('/readyz')).status, 200)
  const closed = app.close()
  // The kept-alive connection may still bring a request for a moment: it gets the answer.
  await new Promise((resolve) => setTimeout(resolve, 100))
  const answer = await get('/readyz')
  t.equal(answer.status, 503)
  t.equal(answer.retryAfter, '1')
  t.match(JSON.parse(answer.body), { code: 'SHUTTING_DOWN' })
  await closed
  t.strictSame(checker.violations, [], 'the answer is the documented one')
})
