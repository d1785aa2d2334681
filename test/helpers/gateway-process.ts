import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { Test } from 'tap'
import { ROOT } from '../../src/paths.js'
import { freePort, RedisServer, type RedisServerOptions } from './redis-server.js'

export interface LogLine {
  level: number
  msg: string
  request_id?: string
  [field: string]: unknown
}

/** The gateway as a real process (`src/server.ts`), its JSON log lines collected. */
export class GatewayProcess {
  readonly lines: LogLine[] = []
  readonly stderr: string[] = []
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>

  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        this.lines.push(JSON.parse(line) as LogLine)
      } catch {
        this.lines.push({ level: 0, msg: `(not JSON) ${line}` })
      }
    })
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
      this.stderr.push(line)
    })
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }))
    })
  }

  /** Spawns the gateway; with `waitForListening`, resolves once it serves HTTP. */
  static async start(
    env: Record<string, string>,
    waitForListening = true,
  ): Promise<GatewayProcess> {
    const port = env.PORT ?? String(await freePort())
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        LOG_LEVEL: 'info',
        ...env,
        PORT: port,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const gateway = new GatewayProcess(child, `http://127.0.0.1:${port}`)
    if (waitForListening) await gateway.waitUntilServing(20_000)
    return gateway
  }

  /** Polls /healthz until the process answers (it listens even while Redis is down). */
  async waitUntilServing(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      if (this.child.exitCode !== null) {
        throw new Error(`gateway exited (${this.child.exitCode}): ${this.stderr.join('\n')}`)
      }
      try {
        if ((await fetch(`${this.url}/healthz`)).ok) return
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error('the gateway did not start serving')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  async waitForLog(match: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = this.lines.find(match)
      if (found) return found
      if (this.child.exitCode !== null) {
        throw new Error(`gateway exited (${this.child.exitCode}): ${this.stderr.join('\n')}`)
      }
      if (Date.now() > deadline) throw new Error('timed out waiting for a gateway log line')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM') {
    if (this.child.exitCode === null) this.child.kill(signal)
    return this.exited
  }
}

/**
 * The set-up of the load tests: a gateway process on its own `redis-server`, with warnings-only
 * logs and no rate limit; both are stopped (the gateway with SIGKILL) when the test ends.
 */
export async function gatewayOnOwnRedis(
  t: Test,
  options: { redis?: RedisServerOptions; env?: Record<string, string> } = {},
): Promise<{ redis: RedisServer; gateway: GatewayProcess }> {
  const redis = await RedisServer.start(options.redis)
  t.teardown(() => redis.destroy())
  const gateway = await GatewayProcess.start({
    REDIS_URL: redis.url,
    LOG_LEVEL: 'warn',
    RATE_LIMIT: 'off',
    ...options.env,
  })
  t.teardown(() => gateway.stop('SIGKILL'))
  return { redis, gateway }
}
