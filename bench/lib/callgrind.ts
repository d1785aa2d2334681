import { execFile } from 'node:child_process'
import { copyFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { Redis } from 'ioredis'
import { freePort, INFRA_CPU, launch, type Spawned, tempDir } from './proc.js'
import { connectWhenUp, redisServerArgs } from './redis.js'

const run = promisify(execFile)

/**
 * A redis-server under valgrind's callgrind, started from a snapshot, counting nothing until
 * `instructions()` asks. An instruction count does not depend on what else the machine does,
 * so it shows a change in Redis's work per call that throughput noise would hide.
 */
export class CountedRedis {
  private dumps = 0

  private constructor(
    readonly port: number,
    private readonly server: Spawned,
    private readonly dir: { path: string; remove(): void },
    readonly client: Redis,
  ) {}

  /** Starts on a copy of `rdbFile`; valgrind loads it about five times slower than Redis. */
  static async start(rdbFile: string): Promise<CountedRedis> {
    const port = await freePort()
    const dir = tempDir('jobgate-bench-callgrind-')
    copyFileSync(rdbFile, join(dir.path, 'dump.rdb'))
    const server = launch(INFRA_CPU, 'valgrind', [
      '--tool=callgrind',
      '--instr-atstart=no',
      `--callgrind-out-file=${join(dir.path, 'callgrind.out')}`,
      'redis-server',
      ...redisServerArgs(port, dir.path, ['--dbfilename', 'dump.rdb', '--appendonly', 'no']),
    ])
    const client = await connectWhenUp(port, 600_000, 'redis-server in valgrind')
    return new CountedRedis(port, server, dir, client)
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** Instructions Redis executed while `work` ran (its own client I/O included). */
  async instructions(work: () => Promise<void>): Promise<number> {
    const pid = String(this.server.child.pid)
    // Switching instrumentation off and on again garbles later dumps: it stays on once on, and
    // each count starts from zero (the server's idle housekeeping meanwhile is a rounding error).
    if (this.dumps === 0) await run('callgrind_control', ['--instr=on', pid])
    await run('callgrind_control', ['--zero', pid])
    await work()
    await run('callgrind_control', ['--dump', pid])
    this.dumps += 1
    const dump = readFileSync(join(this.dir.path, `callgrind.out.${this.dumps}`), 'utf8')
    const summary = /^summary: (\d+)$/m.exec(dump)?.[1]
    if (summary === undefined) throw new Error('bench: no callgrind summary')
    return Number(summary)
  }

  async stop(): Promise<void> {
    this.client.disconnect()
    await this.server.stop('SIGKILL')
    this.dir.remove()
  }
}
