import t from 'tap'
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
      'requests arriving during the drain get a SHUTTING_DOWN problem',
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
