import { readFileSync } from 'node:fs'
import { Validator } from '@seriousme/openapi-schema-validator'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { EVENT_ID } from '../routes/events.js'
import { buildApp } from '../src/app.js'
import { newApiKey } from '../src/auth.js'
import { loadConfig } from '../src/config.js'
import { createAjv, dereference, HTTP_METHODS, loadOpenApi } from '../src/contract.js'
import { problemCodes } from '../src/errors.js'
import { idempotencyKeyOf } from '../src/idempotency.js'
import { OPENAPI_PATH } from '../src/paths.js'
import { ContractChecker, openApiPath } from './helpers/contract-check.js'
import { startGateway } from './helpers/gateway.js'
import { RedisServer } from './helpers/redis-server.js'

const document = loadOpenApi()

t.test('openapi.yaml is a valid OpenAPI 3.1 document', async (t) => {
  const validator = new Validator()
  const result = await validator.validate(structuredClone(document))
  t.same(result.errors ?? [], [], 'no schema errors')
  t.equal(result.valid, true)
  t.match(String(document.openapi), /^3\.1\./)
})

t.test('every component schema compiles under strict JSON Schema 2020-12', async (t) => {
  const resolved = dereference(document, document)
  const ajv = createAjv({ coerceTypes: false, useDefaults: false })
  for (const [name, schema] of Object.entries(resolved.components.schemas ?? {})) {
    t.doesNotThrow(() => ajv.compile(schema as object), name)
  }
})

async function registeredRoutes(t: Test): Promise<{ routes: Set<string>; app: FastifyInstance }> {
  const redis = await RedisServer.start()
  t.teardown(() => redis.destroy())
  const app = buildApp(loadConfig({ REDIS_URL: redis.url, LOG_LEVEL: 'silent' }))
  const routes = new Set<string>()
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    for (const method of methods) {
      // HEAD twins of GET routes are Fastify's, answered like the GET.
      if (method !== 'HEAD') routes.add(`${method} ${openApiPath(route.url)}`)
    }
  })
  await app.ready()
  t.teardown(() => app.close())
  return { routes, app }
}

t.test('registered routes and documented operations are the same set', async (t) => {
  const { routes } = await registeredRoutes(t)
  const documented = new Set<string>()
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of HTTP_METHODS) {
      if (item[method]) documented.add(`${method.toUpperCase()} ${path}`)
    }
  }
  t.strictSame(
    [...routes].filter((r) => !documented.has(r)),
    [],
    'every route is in openapi.yaml',
  )
  t.strictSame(
    [...documented].filter((r) => !routes.has(r)),
    [],
    'every operation is served',
  )
})

t.test('the Problem code enum lists exactly the error catalogue', async (t) => {
  const problem = (
    document.components.schemas as Record<string, { properties: { code: { enum: string[] } } }>
  ).Problem
  t.strictSame([...(problem?.properties.code.enum ?? [])].sort(), problemCodes().sort())
})

t.test('the documented idempotency key pattern and the gateway agree', async (t) => {
  const schemas = document.components.schemas as Record<string, { pattern: string }>
  const pattern = new RegExp(schemas.IdempotencyKeyHeader?.pattern ?? '', 'u')
  const samples = [
    'abc',
    '"abc"',
    'k'.repeat(255),
    `"${'k'.repeat(255)}"`,
    'k'.repeat(256),
    '""',
    '"',
    'a b',
    'a"b',
    'a\\b',
    'tab\there',
    'ünïcode',
    '~!#$%&()*+,-./:;<=>?@[]^_`{|}',
  ]
  for (const sample of samples) {
    let accepted = true
    try {
      idempotencyKeyOf({ 'idempotency-key': sample })
    } catch {
      accepted = false
    }
    t.equal(accepted, pattern.test(sample), JSON.stringify(sample))
  }
})

t.test('the documented event id pattern and the Last-Event-ID check agree', async (t) => {
  const schemas = document.components.schemas as Record<string, { pattern: string }>
  const pattern = new RegExp(schemas.EventId?.pattern ?? '', 'u')
  const samples = ['0', '0-0', '1795783219387-0', '1795783219387-12', '', '00', '1-', '-1', '1-2-3']
  for (const sample of [...samples, `${'9'.repeat(16)}-0`, `1-${'9'.repeat(16)}`, 'abc']) {
    t.equal(EVENT_ID.test(sample), pattern.test(sample), JSON.stringify(sample))
  }
})

t.test('a batch item is an EnqueueRequest plus its idempotency key', async (t) => {
  const resolved = dereference(document, document).components.schemas as Record<
    string,
    { properties: Record<string, unknown>; required: string[]; allOf: unknown[] }
  >
  const item = resolved.BatchJob
  const single = resolved.EnqueueRequest
  const { idempotency_key: key, ...rest } = item?.properties ?? {}
  t.strictSame(rest, single?.properties, 'the same members with the same schemas')
  t.strictSame(item?.required, single?.required)
  t.strictSame(item?.allOf, single?.allOf)
  const pattern = new RegExp((key as { pattern: string }).pattern, 'u')
  for (const sample of ['abc', 'k'.repeat(255), 'k'.repeat(256), '', 'a b', 'a"b', 'tab\there']) {
    let accepted = true
    try {
      idempotencyKeyOf({ 'idempotency-key': sample })
    } catch {
      accepted = false
    }
    t.equal(pattern.test(sample), accepted, `item key ${JSON.stringify(sample)} as the header`)
  }
})

t.test('the documented idempotency retention is the default', async (t) => {
  const policy = document['x-idempotency'] as { 'retention-default': string }
  t.equal(policy['retention-default'], 'PT24H')
  t.equal(loadConfig({}).idempotencyTtlMs, 24 * 3_600_000)
  t.match(String((document.info as { description: string }).description), /24 hours by default/)
})

t.test('the contract checker catches a response that breaks the contract', async (t) => {
  const checker = new ContractChecker()
  const ok = {
    method: 'GET',
    route: '/healthz',
    status: 200,
    headers: { 'content-type': 'application/json; charset=utf-8', 'x-request-id': 'r' },
    body: '{"status":"ok"}',
  }
  t.strictSame(checker.check(ok), [])
  t.equal(checker.check({ ...ok, body: '{"status":"fine"}' }).length, 1, 'wrong body')
  t.equal(checker.check({ ...ok, status: 418 }).length, 1, 'undocumented status')
  t.equal(
    checker.check({ ...ok, headers: { 'content-type': 'application/json' } }).length,
    1,
    'missing header',
  )
  t.equal(
    checker.check({ ...ok, headers: { ...ok.headers, 'content-type': 'text/html' } }).length,
    1,
  )
  t.equal(checker.check({ ...ok, route: '/nope' }).length, 1, 'undocumented route')
  const problem = {
    ...ok,
    headers: { 'content-type': 'application/problem+json', 'x-request-id': 'r' },
    body: '{"type":"about:blank","title":"t","status":405,"detail":"d","code":"METHOD_NOT_ALLOWED"}',
  }
  t.strictSame(checker.check({ ...problem, status: 405 }), [], 'any operation may answer 405')
  t.equal(
    checker.check({ ...problem, status: 404 }).length,
    1,
    'the default answer stands for its own statuses only',
  )
})

t.test('every operation documents the answers any operation may give', async (t) => {
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of HTTP_METHODS) {
      const operation = item[method] as { responses: Record<string, { $ref?: string }> } | undefined
      if (!operation) continue
      t.equal(
        operation.responses.default?.$ref,
        '#/components/responses/AnyOperation',
        `${method.toUpperCase()} ${path}`,
      )
    }
  }
})

t.test(
  'every get operation but the event stream answers HEAD as its GET, without a body',
  async (t) => {
    const { app } = await startGateway(t)
    const submitted = await app.inject({
      method: 'POST',
      url: '/v1/queues/q/jobs',
      headers: { 'content-type': 'application/json' },
      payload: { type: 't' },
    })
    const id = (submitted.json() as { id: string }).id
    for (const [path, item] of Object.entries(document.paths)) {
      if (!item.get) continue
      const url = `${path.replace('{queue}', 'q').replace('{id}', id)}${path.endsWith('/jobs') ? '?state=queued' : ''}`
      const head = await app.inject({ method: 'HEAD', url })
      if (path.endsWith('/events')) {
        t.equal(head.statusCode, 405, `HEAD ${path}`)
        continue
      }
      const get = await app.inject({ method: 'GET', url })
      t.equal(head.statusCode, get.statusCode, `HEAD ${path}: the GET's status (${get.statusCode})`)
      t.equal(head.headers['content-type'], get.headers['content-type'], `HEAD ${path}: its type`)
      t.equal(head.body, '', `HEAD ${path}: no body`)
    }
  },
)

t.test('the gateway serves this contract, without a key, with an ETag', async (t) => {
  const { app } = await startGateway(t, {
    env: { API_KEYS: newApiKey('someone', ['read']).entry },
  })
  const served = await app.inject({ method: 'GET', url: '/openapi.yaml' })
  t.equal(served.statusCode, 200)
  t.equal(served.headers['content-type'], 'application/yaml; charset=utf-8')
  t.equal(served.headers['cache-control'], 'no-cache')
  t.equal(served.body, readFileSync(OPENAPI_PATH, 'utf8'), 'the file, byte for byte')
  const etag = String(served.headers.etag)
  t.match(etag, /^"[A-Za-z0-9_-]{27}"$/)

  for (const ifNoneMatch of [etag, `W/${etag}`, `"other", ${etag}`]) {
    const cached = await app.inject({
      method: 'GET',
      url: '/openapi.yaml',
      headers: { 'if-none-match': ifNoneMatch },
    })
    t.equal(cached.statusCode, 304, ifNoneMatch)
    t.equal(cached.body, '')
    t.equal(cached.headers.etag, etag)
  }
  const stale = await app.inject({
    method: 'GET',
    url: '/openapi.yaml',
    headers: { 'if-none-match': '"an-older-one"' },
  })
  t.equal(stale.statusCode, 200)
})
