import t from 'tap'
import { prefersMinimal } from '../src/prefer.js'
import { startGateway } from './helpers/gateway.js'

t.test('prefersMinimal reads RFC 7240 Prefer headers', async (t) => {
  const cases: [string | string[] | undefined, boolean][] = [
    [undefined, false],
    ['return=minimal', true],
    ['Return=Minimal', true],
    ['return="minimal"', true],
    ['return = minimal', true],
    ['respond-async, return=minimal; detail=1', true],
    [['handling=lenient', 'return=minimal'], true],
    ['return=representation', false],
    // Only the first `return` preference counts.
    ['return=representation, return=minimal', false],
    ['return=minimal, return=representation', true],
    ['minimal', false],
    ['handling=strict', false],
    ['', false],
    ['return=', false],
  ]
  for (const [prefer, expected] of cases) {
    t.equal(prefersMinimal({ prefer }), expected, JSON.stringify(prefer))
  }
})

t.test(
  'Prefer: return=minimal → 202 with id and state only; the job is stored whole',
  async (t) => {
    const { app, client } = await startGateway(t)
    const send = (prefer: string) =>
      app.inject({
        method: 'POST',
        url: '/v1/queues/emails/jobs',
        headers: { 'idempotency-key': 'welcome-ada', prefer },
        payload: { type: 'send-email', payload: { to: 'ada@example.com' }, max_attempts: 4 },
      })

    const res = await send('return=minimal')
    t.equal(res.statusCode, 202)
    t.equal(res.headers['preference-applied'], 'return=minimal')
    t.equal(res.headers['idempotent-replayed'], undefined)
    const body = res.json()
    t.strictSame(Object.keys(body).sort(), ['id', 'state'])
    t.match(body.id, /^[0-9a-f-]{36}$/)
    t.equal(body.state, 'queued')
    t.equal(res.headers.location, `/v1/queues/emails/jobs/${body.id}`)
    t.strictSame(await client.lrange('jobgate:{emails}:ready:5', 0, -1), [body.id])
    const stored = await client.hgetall(`jobgate:{emails}:job:${body.id}`)
    t.equal(stored.state, 'queued')
    t.equal(stored.max_attempts, '4')
    t.equal(stored.payload, '{"to":"ada@example.com"}')

    const status = await app.inject({ method: 'GET', url: String(res.headers.location) })
    t.equal(status.statusCode, 200)
    t.match(status.json(), { id: body.id, type: 'send-email', max_attempts: 4, attempts: 0 })

    const replay = await send('return=minimal')
    t.equal(replay.statusCode, 202)
    t.equal(replay.headers['idempotent-replayed'], 'true')
    t.equal(replay.headers['preference-applied'], 'return=minimal')
    t.strictSame(replay.json(), { id: body.id, state: 'queued' })

    // Without the preference, or with another one, the same replay is the whole job.
    for (const prefer of ['return=representation', 'handling=strict']) {
      const full = await send(prefer)
      t.equal(full.statusCode, 202)
      t.equal(full.headers['preference-applied'], undefined, prefer)
      t.match(full.json(), { id: body.id, queue: 'emails', type: 'send-email', max_attempts: 4 })
    }
    t.equal(await client.llen('jobgate:{emails}:ready:5'), 1, 'replays created nothing')
  },
)

t.test('a minimal answer shows a delayed job as scheduled', async (t) => {
  const { app, client } = await startGateway(t)
  const res = await app.inject({
    method: 'POST',
    url: '/v1/queues/q/jobs',
    headers: { prefer: 'return=minimal' },
    payload: { type: 't', delay_ms: 60_000 },
  })
  t.equal(res.statusCode, 202)
  const { id, state } = res.json()
  t.equal(state, 'scheduled')
  t.not(await client.zscore('jobgate:{q}:scheduled', id), null, 'in the scheduled set')
})

t.test(
  'Prefer: return=minimal on a batch: accepted items carry id and state, not the job',
  async (t) => {
    const { app, client } = await startGateway(t)
    const batch = (prefer: string | undefined, jobs: object[]) =>
      app.inject({
        method: 'POST',
        url: '/v1/queues/emails/jobs:batch',
        headers: prefer ? { prefer } : {},
        payload: { jobs },
      })
    const first = await batch(undefined, [{ idempotency_key: 'a', type: 'echo' }])
    const firstId = first.json().results[0].job.id

    const res = await batch('return=minimal', [
      { idempotency_key: 'a', type: 'echo' },
      { idempotency_key: 'b', type: 'echo', delay_ms: 60_000 },
      { type: 'echo', payload: 'not an object' },
      { idempotency_key: 'a', type: 'other' },
    ])
    t.equal(res.statusCode, 200)
    t.equal(res.headers['preference-applied'], 'return=minimal')
    const body = res.json()
    t.match(body, { accepted: 1, replayed: 1, rejected: 2 })
    const [replayed, created, invalid, conflict] = body.results
    t.strictSame(replayed, {
      index: 0,
      status: 202,
      replayed: true,
      location: `/v1/queues/emails/jobs/${firstId}`,
      id: firstId,
      state: 'queued',
    })
    t.strictSame(Object.keys(created).sort(), [
      'id',
      'index',
      'location',
      'replayed',
      'state',
      'status',
    ])
    t.match(created, { index: 1, status: 202, replayed: false, state: 'scheduled' })
    t.equal(await client.hget(`jobgate:{emails}:job:${created.id}`, 'state'), 'scheduled')
    t.match(invalid, { index: 2, status: 400, problem: { code: 'VALIDATION_FAILED' } })
    t.match(conflict, { index: 3, status: 422, problem: { code: 'IDEMPOTENCY_KEY_REUSED' } })

    const full = await batch('return=representation', [
      { idempotency_key: 'b', type: 'echo', delay_ms: 60_000 },
    ])
    t.equal(full.headers['preference-applied'], undefined)
    t.match(full.json().results[0], { replayed: true, job: { id: created.id, state: 'scheduled' } })
  },
)
