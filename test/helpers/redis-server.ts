import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'

/** A free TCP port on 127.0.0.1, as the OS hands it out. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port)
        else reject(new Error('no port'))
      })
    })
  })
}

export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

export interface RedisServerOptions {
  /** Extra `redis-server` arguments, e.g. `['--appendonly', 'yes']`. */
  args?: string[]
  /** Reuse this data directory (and port) — for restarting a server that was stopped. */
  dir?: string
  port?: number
  /** A config file, read before the arguments (Sentinel needs one it can rewrite). */
  configFile?: string
  /**
   * How clients log in (in `url`, so the probe, `client()` and `ask` too); the server's own
   * `requirepass` or `user` lines come with `args` or `configFile`.
   */
  login?: { username?: string; password: string }
}

class EarlyExit extends Error {
  constructor(code: number) {
    super(`redis-server exited with ${code}`)
  }
}

/** A private `redis-server` process on a free port, with its own data directory. */
export class RedisServer {
  private process: ChildProcess | null = null
  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly args: string[],
    private readonly configFile?: string,
    private readonly login?: RedisServerOptions['login'],
  ) {}

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'jobgate-redis-'))
    for (let attempt = 1; ; attempt++) {
      const port = options.port ?? (await freePort())
      const server = new RedisServer(
        port,
        dir,
        options.args ?? [],
        options.configFile,
        options.login,
      )
      try {
        await server.spawn()
        return server
      } catch (error) {
        // A port found free can be taken before redis-server binds it (by another test file's
        // server, or a cluster node's bus port at its port + 10000): try another one.
        if (options.port !== undefined || attempt === 5 || !(error instanceof EarlyExit))
          throw error
      }
    }
  }

  get url(): string {
    const login = this.login
      ? `${encodeURIComponent(this.login.username ?? '')}:${encodeURIComponent(this.login.password)}@`
      : ''
    return `redis://${login}127.0.0.1:${this.port}`
  }

  /** A plain client for assertions (not the gateway's). */
  client(): Redis {
    return new Redis(this.url, { maxRetriesPerRequest: 1, lazyConnect: false })
  }

  /** One question over a client of its own, closed after. */
  async ask<T>(question: (client: Redis) => Promise<T>): Promise<T> {
    const client = this.client()
    try {
      return await question(client)
    } finally {
      client.disconnect()
    }
  }

  /** Until this primary counts `count` replicas online (only those answer `WAIT`). */
  async waitForReplicas(count: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const info = await this.ask((client) => client.info('replication'))
      if ((info.match(/state=online/g) ?? []).length >= count) return
      if (Date.now() > deadline) throw new Error(`${this.port}: ${count} replica(s) not online`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  async spawn(): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        ...(this.configFile ? [this.configFile] : []),
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
        '--loglevel',
        'warning',
        ...this.args,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    )
    this.process = child
    const deadline = Date.now() + 10_000
    for (;;) {
      if (child.exitCode !== null) throw new EarlyExit(child.exitCode)
      const probe = new Redis(this.url, {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      })
      probe.on('error', () => {})
      try {
        await probe.connect()
        await probe.ping()
        return
      } catch {
        if (Date.now() > deadline) throw new Error(`redis-server on ${this.port} did not start`)
        await new Promise((resolve) => setTimeout(resolve, 20))
      } finally {
        probe.disconnect()
      }
    }
  }

  /** Stops the process (SIGKILL: like a crash, nothing is flushed). */
  async kill(): Promise<void> {
    await this.signal('SIGKILL')
  }

  async stop(): Promise<void> {
    await this.signal('SIGTERM')
  }

  /**
   * Freezes the process (SIGSTOP): connections stay open but nothing answers. Returns once the
   * kernel shows it stopped.
   */
  async pause(): Promise<void> {
    const pid = this.process?.pid
    if (pid === undefined) return
    this.process?.kill('SIGSTOP')
    const stopped = () => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('T')
    while (!stopped()) await new Promise((resolve) => setTimeout(resolve, 1))
  }

  resume(): void {
    this.process?.kill('SIGCONT')
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.process
    this.process = null
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGCONT')
    child.kill(signal)
    await exited
  }

  async destroy(): Promise<void> {
    await this.kill()
    rmSync(this.dir, { recursive: true, force: true })
  }
}
