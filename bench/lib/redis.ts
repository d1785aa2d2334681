import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { freePort, INFRA_CPU, launch, type Spawned, tempDir, waitFor } from './proc.js'

/** redis-server on loopback at `port` with its data in `dir`, no RDB saves; `persistence` adds. */
export function redisServerArgs(port: number, dir: string, persistence: string[]): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--loglevel',
    'warning',
    ...persistence,
  ]
}

/** A client for the Redis starting at `port`, once it answers (it may be loading data). */
export async function connectWhenUp(port: number, timeoutMs: number, what: string): Promise<Redis> {
  const client = new Redis({ port, maxRetriesPerRequest: 1, retryStrategy: () => 50 })
  client.on('error', () => {})
  await waitFor(async () => (await client.ping()) === 'PONG', timeoutMs, what)
  return client
}

/**
 * The benchmark's Redis: a fresh redis-server with the recommended production persistence
 * (AOF, fsync every second), pinned to the infrastructure core, in a new data directory.
 *
 * Automatic AOF rewrites are off: one that starts in the middle of a measurement (the AOF
 * doubles every few seconds under full load) forks Redis and rewrites the whole dataset on the
 * core Redis shares with the load generator, and costs the process under test up to a third of
 * its rate for that run. The AOF is rewritten between measurements instead (compact()).
 */
export class BenchRedis {
  private constructor(
    readonly port: number,
    private readonly server: Spawned,
    private readonly dir: { path: string; remove(): void },
    readonly client: Redis,
  ) {}

  static async start(): Promise<BenchRedis> {
    const port = await freePort()
    const dir = tempDir('jobgate-bench-redis-')
    const server = launch(
      INFRA_CPU,
      'redis-server',
      redisServerArgs(port, dir.path, [
        '--appendonly',
        'yes',
        '--appendfsync',
        'everysec',
        '--auto-aof-rewrite-percentage',
        '0',
        '--repl-diskless-sync-delay',
        '0',
      ]),
    )
    const client = await connectWhenUp(port, 10_000, 'redis-server')
    return new BenchRedis(port, server, dir, client)
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get pid(): number {
    return this.server.child.pid ?? 0
  }

  async flush(): Promise<void> {
    await this.client.flushall()
    await this.compact()
  }

  /**
   * Rewrites the AOF and waits for it, then for the kernel to write it out (`sync`): earlier
   * runs' writes do not weigh on the next one. A 1 M-job backlog's rewrite leaves about a GB of
   * dirty pages, whose writeback would otherwise slow the AOF's fsyncs during the measurement.
   */
  async compact(): Promise<void> {
    await this.client.bgrewriteaof().catch(() => undefined)
    await waitFor(
      async () => !/aof_rewrite_in_progress:1/.test(await this.client.info('persistence')),
      60_000,
      'AOF rewrite',
    )
    execFileSync('sync')
  }

  /** Automatic AOF rewrites on (as in production, for long runs) or off (the default here). */
  async rewriteAutomatically(on: boolean): Promise<void> {
    await this.client.config('SET', 'auto-aof-rewrite-percentage', on ? '100' : '0')
  }

  /**
   * A replica of this Redis (no persistence of its own), pinned to the same core; resolves once
   * the primary counts it online. Stop it when the measurement is over.
   */
  async startReplica(): Promise<Spawned> {
    const port = await freePort()
    const dir = tempDir('jobgate-bench-replica-')
    const replica = launch(
      INFRA_CPU,
      'redis-server',
      redisServerArgs(port, dir.path, ['--replicaof', '127.0.0.1', String(this.port)]),
    )
    await waitFor(
      async () => /state=online/.test(await this.client.info('replication')),
      30_000,
      'the replica in sync',
    )
    return {
      ...replica,
      stop: async (signal) => {
        const code = await replica.stop(signal)
        dir.remove()
        return code
      },
    }
  }

  /** Writes an RDB snapshot of everything Redis holds now; returns the file. */
  async snapshot(): Promise<string> {
    await this.client.save()
    return join(this.dir.path, 'dump.rdb')
  }

  async version(): Promise<string> {
    return /redis_version:(\S+)/.exec(await this.client.info('server'))?.[1] ?? '?'
  }

  async stop(): Promise<void> {
    this.client.disconnect()
    await this.server.stop('SIGKILL')
    this.dir.remove()
  }
}
