import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { ROOT } from '../src/paths.js'
import { freePort } from './helpers/redis-server.js'

const run = promisify(execFile)

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

t.test('./dev up brings up Redis, the gateway and a PHP worker; its curl runs a job', async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'jobgate-stack-'))
  const [port, redisPort] = [await freePort(), await freePort()]
  // A clean environment: no REDIS_URL (the stack starts its own), none of the test runner's
  // hooks (it adds NODE_OPTIONS to the children it spawns).
  const stack = spawn('env', ['-u', 'NODE_OPTIONS', 'bash', 'dev', 'up'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      PORT: String(port),
      JOBGATE_REDIS_PORT: String(redisPort),
      JOBGATE_STATE_DIR: state,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  stack.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  stack.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  const exited = new Promise<number | null>((resolve) =>
    stack.once('exit', (code) => resolve(code)),
  )
  t.teardown(async () => {
    if (stack.exitCode === null) stack.kill('SIGKILL')
    rmSync(state, { recursive: true, force: true })
  })

  const deadline = Date.now() + 120_000
  while (
    !output.includes('Ctrl-C stops everything') &&
    Date.now() < deadline &&
    stack.exitCode === null
  ) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.match(output, /jobgate is up/, output)
  const curl = /(curl -i -X POST[\s\S]*?'\{.*\}')/.exec(output)?.[1]
  t.ok(curl, 'prints a curl to submit a job')
  const { stdout } = await run('bash', ['-c', curl ?? 'false'])
  t.match(stdout, /^HTTP\/1\.1 202 Accepted/)
  const location = /^location: (\S+)/im.exec(stdout)?.[1]
  t.match(location, /^\/v1\/queues\/emails\/jobs\//)
  t.notMatch(curl, /'Idempotency-Key: welcome-ada'/, "a key of this start's own")
  const again = await run('bash', ['-c', curl ?? 'false'])
  t.match(again.stdout, /^idempotent-replayed: true\r?$/im, 'sent again: a replay')
  t.equal(/^location: (\S+)/im.exec(again.stdout)?.[1], location, 'of the same job')

  let state_ = ''
  for (let i = 0; i < 100 && state_ !== 'succeeded'; i++) {
    const res = await fetch(`http://127.0.0.1:${port}${location}`)
    state_ = ((await res.json()) as { state: string }).state
    if (state_ !== 'succeeded') await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(state_, 'succeeded', 'the stack worker ran the job')

  // The printed watch command, with the job's id: its history, ending at `succeeded`.
  const watch = /(curl -N '[^']*')/.exec(output)?.[1]
  t.ok(watch, 'prints a curl to watch the job')
  const id = location?.split('/').at(-1) ?? ''
  const events = await run('bash', ['-c', (watch ?? 'false').replace('<id>', id)])
  t.strictSame(
    [...events.stdout.matchAll(/"state":"([a-z]+)"/g)].map((m) => m[1]),
    ['queued', 'active', 'succeeded'],
  )

  // The demo's `crash` kills the worker: the stack starts another, which runs the next job.
  const submit = (body: string) =>
    fetch(`http://127.0.0.1:${port}/v1/queues/emails/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    })
  await submit('{"type":"crash"}')
  for (let i = 0; i < 100 && !output.includes('starting another'); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.match(output, /the worker exited \(137\); starting another/)
  const next = (await (await submit('{"type":"echo"}')).json()) as { id: string }
  let after = ''
  for (let i = 0; i < 100 && after !== 'succeeded'; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/v1/queues/emails/jobs/${next.id}`)
    after = ((await res.json()) as { state: string }).state
    if (after !== 'succeeded') await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(after, 'succeeded', 'the new worker runs jobs')

  // SIGTERM: the test runner starts children with SIGINT ignored, so Ctrl-C cannot be simulated.
  stack.kill('SIGTERM')
  t.equal(await exited, 143, 'the stack stops on a signal')
  t.equal(await listening(port), false, 'the gateway is stopped')
  t.equal(await listening(redisPort), false, 'Redis is stopped')
})

/** `./dev up` in a clean environment, with its output collected. */
function devUp(env: Record<string, string>) {
  const stack = spawn('env', ['-u', 'NODE_OPTIONS', 'bash', 'dev', 'up'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const out = { text: '' }
  for (const stream of [stack.stdout, stack.stderr]) {
    stream.on('data', (chunk: Buffer) => {
      out.text += chunk.toString()
    })
    stream.on('error', () => {})
  }
  const exited = new Promise<number | null>((resolve) =>
    stack.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))),
  )
  return { stack, out, exited }
}

t.test('./dev up: a Redis port in use is refused; a hang-up stops everything', async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'jobgate-stack-'))
  t.teardown(() => rmSync(state, { recursive: true, force: true }))
  const [port, redisPort] = [await freePort(), await freePort()]
  const env = {
    PORT: String(port),
    JOBGATE_REDIS_PORT: String(redisPort),
    JOBGATE_STATE_DIR: state,
  }

  const squatter = createServer().listen(redisPort, '127.0.0.1')
  await once(squatter, 'listening')
  const refused = devUp(env)
  t.equal(await refused.exited, 1)
  t.match(refused.out.text, `127.0.0.1:${redisPort} is in use; set JOBGATE_REDIS_PORT`)
  t.equal(await listening(port), false, 'no gateway was started')
  squatter.close()
  await once(squatter, 'close')
  // Ports the start cannot use are named before anything starts.
  const badRedisPort = devUp({ ...env, JOBGATE_REDIS_PORT: 'abc' })
  t.equal(await badRedisPort.exited, 1)
  t.match(
    badRedisPort.out.text,
    'JOBGATE_REDIS_PORT must be a port number from 1 to 65535 (got "abc")',
  )
  const anyPort = devUp({ ...env, PORT: '0' })
  t.equal(await anyPort.exited, 1)
  t.match(anyPort.out.text, 'PORT=0 (any free port) does not work here')
  t.equal(await listening(redisPort), false, 'no Redis was started')

  const up = devUp(env)
  t.teardown(() => {
    if (up.stack.exitCode === null) up.stack.kill('SIGKILL')
  })
  const deadline = Date.now() + 120_000
  while (!up.out.text.includes('Ctrl-C stops everything') && Date.now() < deadline) {
    if (up.stack.exitCode !== null) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.match(up.out.text, /jobgate is up/)
  // The terminal goes away: nothing reads the output any more, and the shell gets SIGHUP.
  up.stack.stdout.destroy()
  up.stack.stderr.destroy()
  up.stack.kill('SIGHUP')
  t.equal(await up.exited, 129, 'it stops on a hang-up')
  t.equal(await listening(port), false, 'the gateway is stopped')
  t.equal(await listening(redisPort), false, 'Redis is stopped')
  const { stdout } = await run('flock', ['-n', join(state, 'lock'), 'echo', 'free'])
  t.equal(stdout.trim(), 'free', 'and the next ./dev up may start')
})

t.test(
  './dev up killed outright: the next start names what still runs and starts nothing',
  async (t) => {
    const state = mkdtempSync(join(tmpdir(), 'jobgate-stack-'))
    const [port, redisPort] = [await freePort(), await freePort()]
    const env = {
      PORT: String(port),
      JOBGATE_REDIS_PORT: String(redisPort),
      JOBGATE_STATE_DIR: state,
    }
    const left: number[] = []
    t.teardown(() => {
      for (const pid of left) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }
      rmSync(state, { recursive: true, force: true })
    })
    const up = devUp(env)
    const deadline = Date.now() + 120_000
    while (!up.out.text.includes('Ctrl-C stops everything') && Date.now() < deadline) {
      if (up.stack.exitCode !== null) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    t.match(up.out.text, /jobgate is up/)
    up.stack.kill('SIGKILL') // no trap runs: its processes live on in their own sessions
    await up.exited
    const pids = await Promise.all(
      ['redis', 'gateway', 'worker'].map(async (name) =>
        Number((await run('cat', [join(state, 'pids', `${name}.pid`)])).stdout),
      ),
    )
    left.push(...pids)
    t.equal(await listening(port), true, 'the gateway still runs')

    const again = devUp({ ...env, PORT: String(await freePort()) })
    t.equal(await again.exited, 1)
    const named = /still run \(pids ([0-9 ]+)\)/.exec(again.out.text)?.[1]?.split(' ').map(Number)
    const [redis, gateway, worker] = pids
    t.strictSame(named, [worker, gateway, redis], 'it names the worker, the gateway and Redis')
    t.notMatch(again.out.text, /starting redis-server/, 'no second Redis on the same data')

    // The command it prints stops them in that order, each before the next.
    const stop = /the worker first \((for pid in .*?done; done)\)/.exec(again.out.text)?.[1]
    t.ok(stop, 'prints the command that stops them')
    await run('bash', ['-c', stop ?? 'false'])
    t.equal(await listening(port), false, 'the gateway is stopped')
    t.equal(await listening(redisPort), false, 'Redis is stopped')
  },
)
