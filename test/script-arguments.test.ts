import type { Redis } from 'ioredis'
import t from 'tap'
import { QueueKeys, registryKey } from '../src/queue/keys.js'
import { defineScripts, runScript, type ScriptName } from '../src/queue/scripts.js'
import { enqueue, startStore } from './helpers/store.js'

/** Every key with its exact contents (DUMP) and whether it expires. */
async function keyspace(client: Redis): Promise<Record<string, string>> {
  const snapshot: Record<string, string> = {}
  for (const key of (await client.keys('*')).sort()) {
    const [dump, ttl] = await Promise.all([client.dumpBuffer(key), client.pttl(key)])
    snapshot[key] = `${dump?.toString('hex')} ${ttl < 0 ? ttl : 'expires'}`
  }
  return snapshot
}

type Call = { script: ScriptName; keys: string[]; args: (string | number)[] }
type Case = Call & { bad: Record<number, string[]> }

t.test(
  'a malformed argument stops a script before its first write, with an error naming it',
  async (t) => {
    const { store, client } = await startStore(t)
    defineScripts(client)
    const keys = new QueueKeys('jobgate', 'q')
    // A leased job (the worker scripts' target), a dead one, a queued one and a scheduled one.
    const active = await enqueue(store, 'q', { priority: 9 })
    const { job } = await store.leases.reserve('q', 'w', 60_000)
    if (job?.id !== active) throw new Error('the first reserve leases the priority 9 job')
    await enqueue(store, 'q', { priority: 8 })
    const dying = await store.leases.reserve('q', 'w', 60_000)
    await store.leases.fail('q', dying.job?.id ?? '', dying.job?.leaseToken ?? '', {
      message: 'gone',
      class: 'E',
    })
    const queued = await enqueue(store, 'q')
    await enqueue(store, 'q', { delayMs: 60_000 })
    const token = job.leaseToken
    const retention = 60_000
    const events = 1000

    const cases: Case[] = [
      {
        script: 'ack',
        keys: [keys.job(active), keys.active, keys.events, keys.stats],
        args: [active, token, '{"sent":true}', retention, events, keys.base],
        bad: {
          3: [
            'not json',
            '{oops',
            'NaN',
            'nan',
            '[inf]',
            '{"n":0x10}',
            '{"n":-Infinity}',
            ' ',
            // Numbers cjson reads and JSON does not have.
            '+1',
            '01',
            '1.',
            '{"a":-.5}',
            '1.e5',
            '[-01]',
            '[1e]',
            '[-]',
          ],
          // Leading zeros: Redis refuses them as PEXPIRE's and XADD MAXLEN's arguments.
          4: ['', '7d', '0', '1.5', '1e3', '9007199254740993', '060000', '-0'],
          5: ['', 'many'],
        },
      },
      {
        script: 'retry',
        keys: [
          keys.job(active),
          keys.active,
          keys.scheduled,
          keys.dead,
          keys.wake,
          keys.events,
          keys.stats,
        ],
        args: [active, token, 'boom', 'E', -1, '0.5', retention, events, keys.base, retention],
        bad: {
          5: ['60000.5', '-2', '', '1s'],
          6: ['', '1', '-0.1', 'nan', 'inf', '0x0.8'],
          7: ['7d'],
          8: [''],
          10: ['1e3'],
        },
      },
      {
        script: 'fail',
        keys: [keys.job(active), keys.active, keys.dead, keys.events, keys.stats],
        args: [active, token, 'boom', 'E', retention, events, keys.base],
        bad: { 5: ['7d', ''], 6: ['x'] },
      },
      {
        script: 'heartbeat',
        keys: [keys.job(active), keys.active],
        // JSON whose strings hold what is refused outside them: taken (the well-formed call).
        args: [
          active,
          token,
          30_000,
          '{"note":"NaN, inf \\"0x10\\"","n":[-1.5e+3,true,false,null]}',
        ],
        bad: { 3: ['0', '1.5', '30s'], 4: ['{oops', 'NaN', '{"n":[1,02]}'] },
      },
      {
        script: 'release',
        keys: [keys.job(active), keys.active, keys.wake, keys.events, keys.stats],
        args: [keys.base, active, token, job.leaseDeadline, events],
        bad: { 4: ['soon', ''], 5: ['0'] },
      },
      {
        script: 'reserve',
        keys: [keys.active, keys.scheduled, keys.dead, keys.wake, keys.events, keys.stats],
        args: [keys.base, 'w2', 'another-token', 30_000, retention, retention, events],
        bad: { 4: ['30s', '0'], 5: [''], 6: ['-1'], 7: ['1.5', '01000'] },
      },
      {
        script: 'enqueue',
        keys: [
          keys.job('new'),
          keys.idempotency('anonymous', 'k'),
          keys.ready(5),
          keys.scheduled,
          keys.events,
          keys.wake,
          keys.stats,
        ],
        args: ['new', 'fp', retention, 0, 0, 0, 0, events, keys.base, '0', 'queue', 'q'],
        bad: {
          3: ['1d', '086400000'],
          4: ['-1', '0.5'],
          5: ['x'],
          6: ['-5'],
          7: [''],
          8: ['0'],
          10: ['yes'],
        },
      },
      {
        script: 'cancel',
        keys: [keys.job(queued), keys.scheduled, keys.events, keys.stats],
        args: [queued, keys.base, retention, events],
        bad: { 3: ['1d'], 4: [''] },
      },
      {
        script: 'cancel-waiting',
        keys: [keys.scheduled, keys.events, keys.stats],
        args: [keys.base, 'scheduled', 10, retention, events],
        bad: { 2: ['active', ''], 3: ['0', 'all'], 4: [''], 5: ['x'] },
      },
      {
        script: 'counts',
        keys: [keys.scheduled, keys.active, keys.dead, keys.stats],
        args: [keys.base, retention],
        bad: { 2: ['', '7d'] },
      },
      {
        script: 'dead-list',
        keys: [keys.dead],
        args: [keys.base, retention, 0, 10, '', ''],
        // A cursor's id without its score (ARGV[6] alone) is as malformed as a bad score.
        bad: { 2: ['0'], 3: ['-1'], 4: ['0'], 5: ['x', '1.5'], 6: ['some-id'] },
      },
      {
        script: 'job-list',
        keys: [keys.scheduled, keys.active],
        args: [keys.base, 'queued', 0, 10, '', ''],
        bad: { 2: ['dead'], 3: ['first'], 4: ['ten'], 5: ['5.x'], 6: ['some-id'] },
      },
      {
        script: 'delete-queue',
        keys: [
          keys.scheduled,
          keys.active,
          keys.dead,
          keys.stats,
          keys.events,
          keys.wake,
          keys.paused,
        ],
        args: [keys.base, retention],
        bad: { 2: ['x'] },
      },
      {
        script: 'pause',
        keys: [keys.paused, keys.wake, keys.scheduled, keys.active, keys.stats],
        args: [keys.base, 'pause'],
        bad: { 2: ['halt', ''] },
      },
      {
        script: 'redrive',
        keys: [keys.dead, keys.wake, keys.events, keys.stats],
        args: [keys.base, '', 10, events, ''],
        bad: { 3: ['0', 'all'], 4: [''], 5: ['now'] },
      },
      {
        script: 'purge',
        keys: [keys.dead, keys.stats],
        args: [keys.base, '', 10, ''],
        bad: { 3: ['0'], 4: ['now'] },
      },
      {
        script: 'rate-limit',
        keys: ['jobgate:ratelimit:produce:ip:127.0.0.1'],
        args: [1000, 1],
        bad: { 1: ['0', '1s'], 2: ['0'] },
      },
      {
        script: 'admit-queue',
        keys: [registryKey('jobgate')],
        args: ['other', 0],
        bad: { 2: ['-1', 'none'] },
      },
    ]

    for (const { script, keys: scriptKeys, args, bad } of cases) {
      for (const [position, values] of Object.entries(bad)) {
        const index = Number(position)
        for (const value of values) {
          const before = await keyspace(client)
          const call = args.map((arg, i) => (i === index - 1 ? value : arg))
          await t.rejects(
            runScript(client, script, scriptKeys, call),
            new RegExp(`^ERR bad argument ARGV\\[${index}\\]: must be `),
            `${script} ARGV[${index}] = ${JSON.stringify(value)}`,
          )
          t.strictSame(await keyspace(client), before, `${script}: nothing changed`)
        }
      }
    }

    // A cursor's score without its id: the missing id is named.
    for (const script of ['job-list', 'dead-list'] as const) {
      const { keys: scriptKeys, args } = cases.find((c) => c.script === script) as Case
      const before = await keyspace(client)
      await t.rejects(
        runScript(client, script, scriptKeys, [...args.slice(0, 4), '100', '']),
        /^ERR bad argument ARGV\[6\]: must be a job id with a cursor's score/,
        `${script}: a score without an id`,
      )
      t.strictSame(await keyspace(client), before, `${script}: nothing changed`)
    }

    // The calls the bad ones were made from are good ones: only the argument was at fault.
    for (const { script, keys: scriptKeys, args } of cases) {
      await t.resolves(runScript(client, script, scriptKeys, args), `${script}, well formed`)
    }
    t.strictSame(
      JSON.parse((await client.hget(keys.job(active), 'result')) ?? 'null'),
      { sent: true },
      'the leased job was acked by the well-formed call',
    )
    // The JSON check reads strictly for a moment, then puts the server's cjson setting back.
    t.equal(
      await client.eval('return tostring(cjson.decode_invalid_numbers())', 0),
      'true',
      "other scripts' cjson reads as it did",
    )
  },
)
