import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { startGateway } from './helpers/gateway.js'

/**
 * ETags and 304s over a real socket, on every route that lists a 304 in openapi.yaml: GET and
 * its HEAD twin carry the same ETag; If-None-Match naming it gets a 304 with no body, and no
 * Content-Length but a HEAD's (the 200's length, the only one RFC 9110 allows there).
 */

async function submit(app: FastifyInstance, queue = 'q'): Promise<string> {
  const res = await app.inject({
    method: 'POST',
    url: `/v1/queues/${queue}/jobs`,
    payload: { type: 't', payload: {} },
  })
  if (res.statusCode !== 202) throw new Error(`submit: ${res.statusCode} ${res.body}`)
  return res.json().id
}

async function killOne(app: FastifyInstance): Promise<void> {
  const id = await submit(app, 'd')
  const reserved = await app.inject({
    method: 'POST',
    url: '/v1/queues/d/jobs:reserve',
    payload: { worker: 'w' },
  })
  const token = reserved.json().lease.token
  const failed = await app.inject({
    method: 'POST',
    url: `/v1/queues/d/jobs/${id}:fail`,
    payload: { lease_token: token, error: { message: 'no' } },
  })
  if (failed.statusCode !== 200) throw new Error(`fail: ${failed.statusCode} ${failed.body}`)
}

t.test('GET, HEAD and If-None-Match on each conditional route', async (t) => {
  const { app, url } = await startGateway(t, { listen: true })
  const job = await submit(app)
  await killOne(app)
  const routes: [string, () => Promise<unknown>][] = [
    [
      `/v1/queues/q/jobs/${job}`,
      () => app.inject({ method: 'DELETE', url: `/v1/queues/q/jobs/${job}` }),
    ],
    ['/v1/queues/q/jobs?state=queued', () => submit(app)],
    ['/v1/queues/d/dead?limit=10', () => killOne(app)],
    ['/openapi.yaml', async () => undefined],
  ]
  for (const [path, change] of routes) {
    const got = await fetch(url + path)
    t.equal(got.status, 200, `GET ${path}`)
    const body = await got.text()
    const etag = got.headers.get('etag') ?? ''
    t.match(etag, /^"[A-Za-z0-9_-]{27}"$/, `${path}: an ETag`)
    t.equal(got.headers.get('cache-control'), 'no-cache')

    const head = await fetch(url + path, { method: 'HEAD' })
    t.equal(head.status, 200, `HEAD ${path}`)
    t.equal(head.headers.get('etag'), etag, `${path}: HEAD has the GET's ETag`)
    t.equal(head.headers.get('content-length'), String(Buffer.byteLength(body)))
    t.equal(await head.text(), '')

    for (const method of ['GET', 'HEAD']) {
      const cached = await fetch(url + path, { method, headers: { 'if-none-match': etag } })
      t.equal(cached.status, 304, `${method} ${path} with its ETag`)
      t.equal(cached.headers.get('etag'), etag)
      // RFC 9110 8.6: on a 304, none or the 200's.
      const length = method === 'HEAD' ? String(Buffer.byteLength(body)) : null
      t.equal(cached.headers.get('content-length'), length, 'Content-Length: none or the 200s')
      t.equal(cached.headers.get('content-type'), null)
      t.equal(await cached.text(), '')
    }

    await change()
    const after = await fetch(url + path, { headers: { 'if-none-match': etag } })
    if (path === '/openapi.yaml') {
      t.equal(after.status, 304, 'the contract does not change while the gateway runs')
    } else {
      t.equal(after.status, 200, `${path}: changed, so a new answer`)
      t.not(after.headers.get('etag'), etag)
    }
    await after.arrayBuffer()
  }
})

t.test(
  'a route without a 304 in openapi.yaml sends no ETag and ignores If-None-Match',
  async (t) => {
    const { app, url } = await startGateway(t, { listen: true })
    await submit(app)
    for (const method of ['GET', 'HEAD']) {
      const res = await fetch(`${url}/v1/queues/q`, { method, headers: { 'if-none-match': '*' } })
      t.equal(res.status, 200, method)
      t.equal(res.headers.get('etag'), null)
      await res.arrayBuffer()
    }
  },
)
