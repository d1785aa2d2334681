import t from 'tap'
import { ProblemError } from '../src/errors.js'
import { canonicalJson, fingerprint, idempotencyKeyOf } from '../src/idempotency.js'

t.test('Idempotency-Key wins over X-Request-ID; quoted and bare forms', async (t) => {
  t.strictSame(idempotencyKeyOf({ 'idempotency-key': 'a', 'x-request-id': 'b' }), {
    key: 'a',
    header: 'idempotency-key',
  })
  t.strictSame(idempotencyKeyOf({ 'x-request-id': 'b' }), { key: 'b', header: 'x-request-id' })
  t.strictSame(idempotencyKeyOf({ 'idempotency-key': '"a-1"' }), {
    key: 'a-1',
    header: 'idempotency-key',
  })
  t.equal(idempotencyKeyOf({}), null)
})

t.test('malformed keys are a 400 problem naming the header', async (t) => {
  for (const [headers, shown] of [
    [{ 'idempotency-key': '' }, 'Idempotency-Key'],
    [{ 'idempotency-key': 'k'.repeat(256) }, 'Idempotency-Key'],
    [{ 'x-request-id': 'has space' }, 'X-Request-ID'],
  ] as const) {
    t.throws(() => idempotencyKeyOf(headers), ProblemError)
    try {
      idempotencyKeyOf(headers)
    } catch (error) {
      t.match(error, {
        code: 'IDEMPOTENCY_KEY_INVALID',
        status: 400,
        detail: new RegExp(`^${shown}`),
      })
    }
  }
})

t.test('canonical JSON ignores key order, keeps array order', async (t) => {
  t.equal(canonicalJson({ b: 1, a: { d: [2, 1], c: null } }), '{"a":{"c":null,"d":[2,1]},"b":1}')
  t.equal(fingerprint({ a: 1, b: 2 }), fingerprint({ b: 2, a: 1 }))
  t.not(fingerprint({ a: [1, 2] }), fingerprint({ a: [2, 1] }))
  t.not(fingerprint({ a: '1' }), fingerprint({ a: 1 }))
  t.match(fingerprint({}), /^[0-9a-f]{64}$/)
})
