import { connect } from 'node:net'
import t from 'tap'
import { dataKeys, startGateway } from './helpers/gateway.js'

/**
 * Every rejected request gets a problem document with a stable code, and Redis stays empty:
 * the keyspace is asserted after each one.
 */

interface BadRequest {
  label: string
  method?: 'POST' | 'GET' | 'DELETE'
  url?: string
  headers?: Record<string, string>
  body?: string | Buffer
  status: number
  code: string
  /** JSON pointers the problem's `errors` must name. */
  pointers?: string[]
}

const json = (value: unknown) => JSON.stringify(value)
const HUGE = json({ type: 't', payload: { blob: 'x'.repeat(4096) } })

const cases: BadRequest[] = [
  { label: 'invalid JSON', body: '{"type": "t",', status: 400, code: 'INVALID_JSON' },
  {
    label: 'empty JSON body',
    body: '',
    status: 400,
    code: 'INVALID_JSON',
  },
  {
    label: 'text/plain body',
    headers: { 'content-type': 'text/plain' },
    body: 'type=t',
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
  },
  {
    label: 'gzip-encoded body',
    headers: { 'content-encoding': 'gzip' },
    body: json({ type: 't' }),
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
  },
  {
    label: 'form body',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'type=t',
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
  },
  { label: 'body over the limit', body: HUGE, status: 413, code: 'PAYLOAD_TOO_LARGE' },
  {
    label: 'body over the limit on a route that takes none',
    url: '/v1/queues/q:pause',
    body: HUGE,
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
  },
  {
    label: 'body over the limit on a DELETE',
    method: 'DELETE',
    url: '/v1/queues/q/dead',
    headers: { 'content-type': 'application/json' },
    body: HUGE,
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
  },
  {
    label: 'a query parameter the submission does not take (a delay must not be dropped)',
    url: '/v1/queues/q/jobs?delay_ms=5000',
    body: json({ type: 't' }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/delay_ms'],
  },
  {
    label: 'a query parameter on a route that declares none',
    method: 'GET',
    url: '/v1/queues/q?foo=1',
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/foo'],
  },
  {
    label: 'missing type',
    body: json({ payload: {} }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/type'],
  },
  {
    label: 'payload not an object',
    body: json({ type: 't', payload: [1, 2] }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/payload'],
  },
  {
    label: 'payload a string',
    body: json({ type: 't', payload: 'hello' }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/payload'],
  },
  {
    label: 'unknown extra field',
    body: json({ type: 't', colour: 'blue' }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/colour'],
  },
  {
    label: 'an exponential back-off capped below its first delay',
    body: json({ type: 't', backoff: { delay_ms: 60_000, max_delay_ms: 0 } }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/backoff/max_delay_ms'],
  },
  {
    label: 'a back-off delay over the default cap',
    body: json({ type: 't', backoff: { delay_ms: 7_200_000 } }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/backoff/max_delay_ms'],
  },
  {
    label: 'unknown backoff field',
    body: json({ type: 't', backoff: { kind: 'linear' } }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/backoff/kind'],
  },
  {
    label: 'bad queue name',
    url: '/v1/queues/bad%20name!/jobs',
    body: json({ type: 't' }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/queue'],
  },
  {
    label: 'queue name with a hash-tag brace',
    url: '/v1/queues/a%7Bb%7D/jobs',
    body: json({ type: 't' }),
    status: 400,
    code: 'VALIDATION_FAILED',
  },
  {
    label: 'a body nested deeper than 64 levels',
    body: `{"type":"t","payload":{"d":${'['.repeat(63)}${']'.repeat(63)}}}`,
    status: 400,
    code: 'VALIDATION_FAILED',
  },
  {
    label: 'a string with a lone surrogate escape (no Unicode text; PHP cannot decode it)',
    body: '{"type":"t","payload":{"s":"\\ud800"}}',
    status: 400,
    code: 'INVALID_JSON',
  },
  {
    label: 'a lone surrogate escape in a key',
    body: '{"type":"t","payload":{"\\udc00x":1}}',
    status: 400,
    code: 'INVALID_JSON',
  },
  {
    label: 'a number past the range of a double (it would be stored as null)',
    body: '{"type":"t","payload":{"n":1e400}}',
    status: 400,
    code: 'INVALID_JSON',
  },
  {
    label: 'a long mantissa with a two-digit exponent, past the range of a double',
    body: `{"type":"t","payload":{"n":1${'0'.repeat(250)}e99}}`,
    status: 400,
    code: 'INVALID_JSON',
  },
  {
    label: '309 digits, past the range of a double',
    body: `{"type":"t","payload":{"n":-2${'0'.repeat(308)}}}`,
    status: 400,
    code: 'INVALID_JSON',
  },
  {
    label: 'an integer past 2^53 that a double cannot hold (a 64-bit id)',
    body: '{"type":"t","payload":{"user":{"id":9007199254740993}}}',
    status: 400,
    code: 'INVALID_JSON',
  },
  {
    label: 'a negative one, after an escaped quote in a string',
    body: '{"type":"t","payload":{"s":"\\"1"","t":-1732838400123456789}}',
    status: 400,
    code: 'INVALID_JSON',
  },
  {
    label: 'bytes that are not UTF-8',
    body: Buffer.concat([
      Buffer.from('{"type":"t","payload":{"s":"caf'),
      Buffer.from([0xe9]),
      Buffer.from('"}}'),
    ]),
    status: 400,
    code: 'INVALID_JSON',
  },
  {
    label: 'a charset other than UTF-8',
    headers: { 'content-type': 'application/json; charset=latin1' },
    body: json({ type: 't' }),
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
  },
  {
    label: 'a quoted charset other than UTF-8, after a parameter that quotes a ;',
    headers: { 'content-type': 'application/json; x="a;b"; charset="latin1"' },
    body: json({ type: 't' }),
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
  },
  {
    label: 'a deep body for no route: 404, not parsed',
    url: '/nope',
    body: `{"a":${'['.repeat(1_000)}${']'.repeat(1_000)}}`,
    status: 404,
    code: 'ROUTE_NOT_FOUND',
  },
  {
    label: 'a text body for no route: 404, not 415',
    url: '/v1/queues/q/nope',
    headers: { 'content-type': 'text/plain' },
    body: 'x',
    status: 404,
    code: 'ROUTE_NOT_FOUND',
  },
  {
    label: 'a body nested 900 levels deep',
    body: `{"type":"t","payload":{"d":${'['.repeat(900)}${']'.repeat(900)}}}`,
    status: 400,
    code: 'VALIDATION_FAILED',
  },
  {
    label: 'run_at on a leap second',
    body: json({ type: 't', run_at: '2030-12-31T23:59:60Z' }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/run_at'],
  },
  {
    label: 'run_at with an offset of hours only',
    body: json({ type: 't', run_at: '2030-01-01T00:00:00+01' }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/run_at'],
  },
  {
    label: 'run_at more than a year ahead',
    body: json({ type: 't', run_at: '9999-12-31T00:00:00Z' }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/run_at'],
  },
  {
    label: 'ttl_ms ending before delay_ms',
    body: json({ type: 't', delay_ms: 5000, ttl_ms: 1000 }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/ttl_ms'],
  },
  {
    label: 'ttl_ms ending before run_at',
    body: json({
      type: 't',
      run_at: new Date(Date.now() + 3_600_000).toISOString(),
      ttl_ms: 60_000,
    }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/ttl_ms'],
  },
  {
    label: 'queue name over 64 characters',
    url: `/v1/queues/${'q'.repeat(65)}/jobs`,
    body: json({ type: 't' }),
    status: 400,
    code: 'VALIDATION_FAILED',
  },
  {
    label: 'max_attempts: 0',
    body: json({ type: 't', max_attempts: 0 }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/max_attempts'],
  },
  {
    label: 'max_attempts as a string (no coercion of bodies)',
    body: json({ type: 't', max_attempts: '3' }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/max_attempts'],
  },
  {
    label: 'delay_ms: -1',
    body: json({ type: 't', delay_ms: -1 }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/delay_ms'],
  },
  {
    label: 'delay_ms and run_at together',
    body: json({ type: 't', delay_ms: 10, run_at: '2030-01-01T00:00:00Z' }),
    status: 400,
    code: 'VALIDATION_FAILED',
  },
  {
    label: 'run_at not a date-time',
    body: json({ type: 't', run_at: 'tomorrow' }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/run_at'],
  },
  {
    label: 'priority out of range',
    body: json({ type: 't', priority: 10 }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/priority'],
  },
  {
    label: 'type with a space',
    body: json({ type: 'send email' }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/type'],
  },
  {
    label: 'timeout_ms below the minimum',
    body: json({ type: 't', timeout_ms: 10 }),
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/timeout_ms'],
  },
  {
    label: 'body is a JSON array',
    body: json([{ type: 't' }]),
    status: 400,
    code: 'VALIDATION_FAILED',
  },
  {
    label: 'prototype pollution attempt',
    body: '{"type":"t","__proto__":{"polluted":true}}',
    status: 400,
    code: 'INVALID_JSON',
  },
  {
    label: 'idempotency key of 256 characters',
    headers: { 'idempotency-key': 'k'.repeat(256) },
    body: json({ type: 't' }),
    status: 400,
    code: 'IDEMPOTENCY_KEY_INVALID',
  },
  {
    label: 'unknown route',
    url: '/v1/nowhere',
    body: json({ type: 't' }),
    status: 404,
    code: 'ROUTE_NOT_FOUND',
  },
  {
    label: 'a method the route does not take',
    url: '/v1/queues/q',
    body: json({ type: 't' }),
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
  },
  {
    label: 'unknown job id',
    method: 'GET',
    url: '/v1/queues/q/jobs/does-not-exist',
    status: 404,
    code: 'JOB_NOT_FOUND',
  },
  {
    label: 'malformed job id',
    method: 'GET',
    url: '/v1/queues/q/jobs/not*an*id',
    status: 400,
    code: 'VALIDATION_FAILED',
    pointers: ['/id'],
  },
]

for (const [variant, rateLimit, expectedKeys] of [
  ['without rate limiting', 'off', () => false],
  [
    'with rate limiting (only its counters are written)',
    '100000/1s',
    (key: string) => key.startsWith('jobgate:ratelimit:'),
  ],
] as const) {
  t.test(`bad input → problem document, nothing written to Redis, ${variant}`, async (t) => {
    const { app, client } = await startGateway(t, {
      env: { BODY_LIMIT: '2kb', RATE_LIMIT: rateLimit },
    })
    for (const bad of cases) {
      const method = bad.method ?? 'POST'
      const res = await app.inject({
        method,
        url: bad.url ?? '/v1/queues/q/jobs',
        headers:
          method === 'POST' ? { 'content-type': 'application/json', ...bad.headers } : bad.headers,
        ...(bad.body === undefined ? {} : { payload: bad.body }),
      })
      t.equal(res.statusCode, bad.status, `${bad.label}: status`)
      t.match(
        res.headers['content-type'],
        /^application\/problem\+json/,
        `${bad.label}: content type`,
      )
      const problem = res.json()
      t.equal(problem.code, bad.code, `${bad.label}: code`)
      t.equal(problem.status, bad.status, `${bad.label}: status member`)
      t.type(problem.title, 'string')
      t.type(problem.detail, 'string')
      t.equal(
        problem.type,
        `tag:jobgate,2026:problems:${bad.code.toLowerCase().replaceAll('_', '-')}`,
      )
      t.equal(problem.request_id, res.headers['x-request-id'], `${bad.label}: request id`)
      for (const pointer of bad.pointers ?? []) {
        t.ok(
          problem.errors?.some((error: { pointer: string }) => error.pointer === pointer),
          `${bad.label}: errors name ${pointer}`,
        )
      }
      const written = (await client.keys('*')).filter((key) => !expectedKeys(key))
      t.strictSame(written, [], `${bad.label}: nothing written`)
    }
  })
}

t.test('validation reports every failing field at once', async (t) => {
  const { app } = await startGateway(t)
  const res = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    payload: { payload: 1, max_attempts: 0, delay_ms: -5, extra: true },
  })
  t.equal(res.statusCode, 400)
  const pointers = res
    .json()
    .errors.map((error: { pointer: string }) => error.pointer)
    .sort()
  t.strictSame(pointers, ['/delay_ms', '/extra', '/max_attempts', '/payload', '/type'])
  t.match(res.json().detail, /and 4 more/)
})

t.test('a body nested exactly 64 levels deep is accepted, thousands are refused', async (t) => {
  const { app, client } = await startGateway(t)
  // Serialising this one would overflow the stack: refused before anything looks at it.
  const abyss = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    headers: { 'content-type': 'application/json' },
    payload: `{"type":"t","payload":{"d":${'['.repeat(6000)}${']'.repeat(6000)}}}`,
  })
  t.equal(abyss.statusCode, 400)
  t.match(abyss.json(), { code: 'VALIDATION_FAILED', detail: /deeper than 64 levels/ })
  t.strictSame(await dataKeys(client), [])
  // The body is level 1, payload 2, its array 3, … : 61 more arrays reach level 64.
  const body = `{"type":"t","payload":{"d":${'['.repeat(62)}${']'.repeat(62)}}}`
  const res = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    headers: { 'content-type': 'application/json' },
    payload: body,
  })
  t.equal(res.statusCode, 202)
})

t.test('what the HTTP parser refuses is a problem document too', async (t) => {
  const { url, client } = await startGateway(t, { listen: true })
  const { port } = new URL(url)
  const raw = (request: string) =>
    new Promise<string>((resolve, reject) => {
      // Written, not ended: the server closes the connection (`Connection: close`, or an error).
      const socket = connect(Number(port), '127.0.0.1', () => socket.write(request))
      let answer = ''
      socket.on('data', (chunk) => {
        answer += chunk
      })
      socket.on('close', () => resolve(answer))
      socket.on('error', reject)
    })
  const problemOf = (answer: string) => JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))

  const headers = await raw(
    `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
  )
  t.match(headers, /^HTTP\/1\.1 431 /)
  t.match(headers, /\r\nContent-Type: application\/problem\+json/)
  const tooLarge = problemOf(headers)
  t.match(tooLarge, { status: 431, code: 'HEADERS_TOO_LARGE' })
  t.match(headers, new RegExp(`\r\nX-Request-ID: ${tooLarge.request_id}\r\n`))

  const hostless = await raw('GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n')
  t.match(hostless, /^HTTP\/1\.1 400 /)
  t.match(problemOf(hostless), { status: 400, code: 'VALIDATION_FAILED', detail: /Host header/ })
  const tunnel = await raw('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')
  t.match(tunnel, /^HTTP\/1\.1 400 /)
  t.match(problemOf(tunnel), { status: 400, code: 'VALIDATION_FAILED', detail: /CONNECT/ })

  const length = await raw(
    'POST /v1/queues/q/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
  )
  t.match(length, /^HTTP\/1\.1 400 /)
  t.match(problemOf(length), { status: 400, code: 'VALIDATION_FAILED' })

  // Sent as they are (a WHATWG URL, as fetch's, would resolve them): `.` and `..` are no queues.
  for (const name of ['%2E%2E', '%2E', '..']) {
    const dots = await raw(
      `POST /v1/queues/${name}/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{"type":"t"}`,
    )
    t.match(dots, /^HTTP\/1\.1 400 /, `queue ${name}`)
    t.match(problemOf(dots), { code: 'VALIDATION_FAILED', errors: [{ pointer: '/queue' }] })
  }
  t.strictSame(await client.keys('jobgate:{*'), [], 'no queue written')

  const expect = await raw(
    `POST /v1/queues/q/jobs HTTP/1.1\r\nHost: x\r\nExpect: something\r\nX-Request-ID: exp-1\r\nContent-Type: application/json\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{"type":"t"}`,
  )
  t.match(expect, /^HTTP\/1\.1 417 /)
  t.match(expect, /\r\ncontent-type: application\/problem\+json/i)
  t.match(expect, /\r\nx-request-id: exp-1\r\n/i, "the caller's request id")
  t.match(problemOf(expect), { status: 417, code: 'EXPECTATION_FAILED', request_id: 'exp-1' })
  t.strictSame(await client.keys('jobgate:{*'), [], 'no job written')

  const badUrl = await fetch(`${url}/v1/queues/q/jobs/%ZZ`)
  t.equal(badUrl.status, 400)
  t.equal(badUrl.headers.get('content-type'), 'application/problem+json; charset=utf-8')
  const problem = (await badUrl.json()) as { code: string; request_id: string }
  t.equal(problem.code, 'VALIDATION_FAILED')
  t.equal(problem.request_id, badUrl.headers.get('x-request-id'))
})

t.test(
  'a request sent too slowly gets 408 at REQUEST_TIMEOUT; a long answer is fine',
  async (t) => {
    const { url, client } = await startGateway(t, {
      listen: true,
      env: { REQUEST_TIMEOUT: '1s' },
    })
    const { port } = new URL(url)
    const started = Date.now()
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () =>
        socket.write(
          'POST /v1/queues/q/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{',
        ),
      )
      // One more byte now and then: the connection is never idle, the request never whole.
      const trickle = setInterval(() => socket.writable && socket.write(' '), 200)
      let text = ''
      socket.on('data', (chunk) => {
        text += chunk
      })
      socket.on('close', () => {
        clearInterval(trickle)
        resolve(text)
      })
      socket.on('error', reject)
    })
    const took = Date.now() - started
    t.match(answer, /^HTTP\/1\.1 408 /)
    t.match(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)), {
      status: 408,
      code: 'REQUEST_TIMEOUT',
    })
    t.ok(took >= 1000 && took < 5000, `cut off after ${took} ms`)
    t.strictSame(await client.keys('jobgate:{*'), [], 'nothing written')

    // The timeout bounds how long a request takes to arrive, not how long its answer takes.
    const poll = await fetch(`${url}/v1/queues/q/jobs:reserve`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ worker: 'w', wait_ms: 2500 }),
    })
    t.equal(poll.status, 204)
  },
)

t.test(
  'a route that takes no body ignores an empty one of any type, takes {}, refuses others; invalid JSON says why',
  async (t) => {
    const { app } = await startGateway(t)
    await app.inject({ method: 'POST', url: '/v1/queues/q/jobs', payload: { type: 't' } })
    for (const type of ['application/json', 'application/x-www-form-urlencoded', 'text/plain']) {
      for (const [method, url] of [
        ['POST', '/v1/queues/q/dead:redrive'],
        ['POST', '/v1/queues/q:pause'],
        ['DELETE', '/v1/queues/q/dead'],
      ] as const) {
        const res = await app.inject({
          method,
          url,
          headers: { 'content-type': type },
          payload: '',
        })
        t.equal(res.statusCode, 200, `${method} ${url}, an empty ${type} body`)
      }
    }
    t.equal(await app.store.queues.counts('q').then((q) => q.pausedAt !== null), true, 'paused')
    const text = await app.inject({
      method: 'POST',
      url: '/v1/queues/q:resume',
      headers: { 'content-type': 'text/plain' },
      payload: 'please',
    })
    t.equal(text.statusCode, 415, 'a body that is there is still refused unless JSON')
    t.match(text.json(), {
      code: 'UNSUPPORTED_MEDIA_TYPE',
      detail: 'Send the body as application/json.',
    })
    t.equal(
      await app.store.queues.counts('q').then((q) => q.pausedAt !== null),
      true,
      'still paused',
    )
    const empty = await app.inject({ method: 'POST', url: '/v1/queues/q:resume', payload: {} })
    t.equal(empty.statusCode, 200, '{} is no body to refuse')
    t.equal(
      await app.store.queues.counts('q').then((q) => q.pausedAt),
      null,
      'resumed: {} said nothing',
    )
    const job = await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      payload: { type: 't' },
    })
    const { id } = job.json() as { id: string }
    for (const payload of ['{"reason":"a duplicate"}', '[]', 'null', '"cancel"', '0']) {
      const res = await app.inject({
        method: 'DELETE',
        url: `/v1/queues/q/jobs/${id}`,
        headers: { 'content-type': 'application/json' },
        payload,
      })
      t.equal(res.statusCode, 400, `a cancel with ${payload} as its body`)
      t.match(res.json(), {
        code: 'VALIDATION_FAILED',
        detail: 'This operation takes no body: send none, or {}.',
      })
    }
    const status = await app.inject({ method: 'GET', url: `/v1/queues/q/jobs/${id}` })
    t.equal(status.json().state, 'queued', 'the job was not cancelled')
    const broken = await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      headers: { 'content-type': 'application/json' },
      payload: '{"type": "t",}',
    })
    t.equal(broken.statusCode, 400)
    t.match(broken.json(), {
      code: 'INVALID_JSON',
      detail: /^The body is not valid JSON: .*position/,
    })
    const poisoned = await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      headers: { 'content-type': 'application/json' },
      payload: '{"type":"t","__proto__":{"polluted":true}}',
    })
    t.match(poisoned.json(), { code: 'INVALID_JSON', detail: /prototype/ })
  },
)

t.test("a percent-encoded ':' starts no action", async (t) => {
  const { app, client } = await startGateway(t)
  const submitted = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    payload: { type: 't' },
  })
  const id = submitted.json().id
  const before = await client.hgetall(`jobgate:{q}:job:${id}`)
  for (const [method, url] of [
    ['POST', '/v1/queues/q%3Apause'],
    ['POST', '/v1/queues/q%3aresume'],
    ['POST', '/v1/queues/q/jobs%3Abatch'],
    ['POST', `/v1/queues/q/jobs/${id}%3Aheartbeat`],
    ['POST', `/v1/queues/q/dead/${id}%3Aredrive`],
    ['DELETE', '/v1/queues/q%3Apause'],
    ['GET', `/v1/queues/q/jobs/${id}%3Aack`],
  ] as const) {
    const res = await app.inject({ method, url, payload: method === 'POST' ? {} : undefined })
    t.equal(res.statusCode, 404, `${method} ${url}`)
    t.match(res.json(), { code: 'ROUTE_NOT_FOUND', detail: /percent-encoded/ }, url)
  }
  t.equal(await client.exists('jobgate:{q}:paused'), 0, 'the queue was not paused')
  t.strictSame(await client.hgetall(`jobgate:{q}:job:${id}`), before, 'the job is as it was')
  const query = await app.inject({ method: 'GET', url: '/v1/queues?after=a%3Ab' })
  t.equal(query.statusCode, 400, 'in a query it is data: a queue name with a colon')
})

t.test('a malformed job id is a 400 on every route that takes one', async (t) => {
  const { app } = await startGateway(t)
  const routes: [method: 'GET' | 'POST' | 'DELETE', url: string][] = [
    ['GET', '/v1/queues/q/jobs/a.b'],
    ['DELETE', '/v1/queues/q/jobs/a.b'],
    ['POST', '/v1/queues/q/jobs/a.b:ack'],
    ['POST', '/v1/queues/q/jobs/a.b:fail'],
    ['POST', '/v1/queues/q/jobs/a.b:retry'],
    ['POST', '/v1/queues/q/jobs/a.b:heartbeat'],
    ['DELETE', '/v1/queues/q/dead/a.b'],
    ['POST', '/v1/queues/q/dead/a.b:redrive'],
  ]
  for (const [method, url] of routes) {
    const res = await app.inject({ method, url })
    t.equal(res.statusCode, 400, `${method} ${url}`)
    t.match(res.json(), { code: 'VALIDATION_FAILED', errors: [{ in: 'params', pointer: '/id' }] })
  }
})

t.test('what looks odd but is faithful JSON is taken as sent', async (t) => {
  const { app, client } = await startGateway(t)
  const cases: [contentType: string, body: string, stored: string][] = [
    ['application/json; charset="UTF-8"', '{"type":"t","payload":{"a":1}}', '{"a":1}'],
    ['application/json; x="a;charset=latin1"', '{"type":"t","payload":{"q":1}}', '{"q":1}'],
    ['application/json; x="\\";charset=latin1"; charset=utf-8', '{"type":"t"}', '{}'],
    [
      'application/json;charset=utf8',
      '{"type":"t","payload":{"e":"\\ud83d\\ude00"}}',
      '{"e":"😀"}',
    ],
    [
      'application/json',
      '{"type":"t","payload":{"n":1e300,"m":-2.5E-300}}',
      '{"n":1e+300,"m":-2.5e-300}',
    ],
    ['application/json', '{"type":"t","payload":{"s":"[[[[{{{{\\"]]]"}}', '{"s":"[[[[{{{{\\"]]]"}'],
    [
      'application/json',
      `{"type":"t","payload":{"max":1.7976931348623157e308,"n":1${'0'.repeat(250)}e50}}`,
      '{"max":1.7976931348623157e+308,"n":1e+300}',
    ],
    [
      'application/json',
      '{"type":"t","payload":{"safe":9007199254740991,"exact":-9007199254740994,"big":100000000000000000000}}',
      '{"safe":9007199254740991,"exact":-9007199254740994,"big":100000000000000000000}',
    ],
    [
      'application/json',
      '{"type":"t","payload":{"as text":"9007199254740993","1234567890123456789":[0.90071992547409931]}}',
      '{"as text":"9007199254740993","1234567890123456789":[0.9007199254740993]}',
    ],
  ]
  for (const [contentType, body, stored] of cases) {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      headers: { 'content-type': contentType },
      payload: body,
    })
    t.equal(res.statusCode, 202, body)
    t.equal(await client.hget(`jobgate:{q}:job:${res.json().id}`, 'payload'), stored, body)
  }
})

t.test('a Content-Encoding on a request without a body is no reason to refuse it', async (t) => {
  const { app } = await startGateway(t)
  const created = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    payload: { type: 't' },
  })
  const job = `/v1/queues/q/jobs/${created.json().id}`
  for (const url of ['/healthz', '/v1/queues', '/v1/queues/q', job]) {
    const res = await app.inject({ method: 'GET', url, headers: { 'content-encoding': 'gzip' } })
    t.equal(res.statusCode, 200, url)
  }
  const paused = await app.inject({
    method: 'POST',
    url: '/v1/queues/q:pause',
    headers: { 'content-encoding': 'br', 'content-length': '0' },
  })
  t.equal(paused.statusCode, 200)
})

t.test('a wrong method is a 405 that names the methods the path takes', async (t) => {
  const { app } = await startGateway(t)
  const cases: [method: 'PUT' | 'PATCH' | 'POST' | 'DELETE', url: string, allow: string][] = [
    ['PUT', '/v1/queues/q', 'GET, HEAD, DELETE'],
    ['POST', '/v1/queues/q/jobs/0b6c1f6e-3d3a-4b8e-9a55-0d1c4f0f9a21', 'GET, HEAD, DELETE'],
    ['PATCH', '/v1/queues/q/jobs?state=queued', 'GET, HEAD, POST, DELETE'],
    ['DELETE', '/healthz', 'GET, HEAD'],
    ['PUT', '/v1/queues/q/jobs/0b6c1f6e-3d3a-4b8e-9a55-0d1c4f0f9a21:ack', 'POST'],
  ]
  for (const [method, url, allow] of cases) {
    const res = await app.inject({ method, url })
    t.equal(res.statusCode, 405, `${method} ${url}`)
    t.equal(res.headers.allow, allow, `${method} ${url}`)
    t.match(res.json(), { code: 'METHOD_NOT_ALLOWED', detail: new RegExp(`not ${method}`) })
  }
  // An unknown action is no route at all, whatever the method.
  for (const url of [
    '/v1/queues/q:stop',
    '/v1/queues/q/jobs/0b6c1f6e-3d3a-4b8e-9a55-0d1c4f0f9a21:bogus',
  ]) {
    for (const method of ['GET', 'POST'] as const) {
      const res = await app.inject({ method, url })
      t.equal(res.statusCode, 404, `${method} ${url}`)
      t.equal(res.json().code, 'ROUTE_NOT_FOUND')
    }
  }
})

t.test('an inexact integer is named, on worker routes too, and nothing changes', async (t) => {
  const { app, client } = await startGateway(t)
  const postText = (url: string, text: string) =>
    app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json' },
      payload: text,
    })
  const refused = await postText(
    '/v1/queues/q/jobs',
    '{"type":"t","payload":{"id":12345678901234567890123456789}}',
  )
  t.equal(refused.statusCode, 400)
  t.match(refused.json(), {
    code: 'INVALID_JSON',
    detail:
      'The body is not valid JSON: it has the integer 12345678901234567890123456789, past 2^53, which a JSON number cannot carry exactly here (it would reach the worker as 1.2345678901234568e+28); send it as a string.',
  })
  t.strictSame(await dataKeys(client), [])

  const job = await app.inject({ method: 'POST', url: '/v1/queues/q/jobs', payload: { type: 't' } })
  const reserved = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs:reserve',
    payload: { worker: 'w' },
  })
  const ack = await postText(
    `/v1/queues/q/jobs/${job.json().id}:ack`,
    `{"lease_token":"${reserved.json().lease.token}","result":{"order":18446744073709551615}}`,
  )
  t.equal(ack.statusCode, 400)
  t.match(ack.json(), { code: 'INVALID_JSON', detail: /18446744073709551615, past 2\^53/ })
  t.equal(await client.hget(`jobgate:{q}:job:${job.json().id}`, 'state'), 'active')
})

t.test('a number past the range of a double is found among 200,000 others', async (t) => {
  const { app, client } = await startGateway(t)
  const res = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    headers: { 'content-type': 'application/json' },
    payload: `{"type":"t","payload":{"n":[${'1,'.repeat(200_000)}1e400]}}`,
  })
  t.equal(res.statusCode, 400)
  t.match(res.json(), { code: 'INVALID_JSON', detail: /too large for a double/ })
  t.strictSame(await dataKeys(client), [])
})
