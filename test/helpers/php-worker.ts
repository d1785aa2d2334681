import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { ROOT } from '../../src/paths.js'

export const WORKER_BIN = join(ROOT, 'php-worker/bin/jobgate-worker')
export const TEST_HANDLERS = join(ROOT, 'test/fixtures/handlers.php')

export interface WorkerLogLine {
  msg: string
  level: string
  job_id?: string
  attempt?: number
  exit_code?: number
  reason?: string
  [field: string]: unknown
}

export interface WorkerOptions {
  queues?: string[]
  /** Extra CLI options, e.g. `['--lease=1', '--timeout=2']`. */
  args?: string[]
  env?: Record<string, string>
  /** `redis` (give `redisUrl`) or `http` (give `gatewayUrl`). */
  transport?: 'redis' | 'http'
  redisUrl?: string
  gatewayUrl?: string
}

/** A real `php-worker/bin/jobgate-worker` process; its JSON log lines (stderr) are collected. */
export class PhpWorker {
  readonly lines: WorkerLogLine[] = []
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  private readonly child: ChildProcess

  constructor(options: WorkerOptions) {
    const transport = options.transport ?? 'redis'
    const given = options.args ?? []
    const defaults = [
      `--handlers=${TEST_HANDLERS}`,
      `--transport=${transport}`,
      transport === 'http'
        ? `--gateway=${options.gatewayUrl}`
        : options.redisUrl
          ? `--redis=${options.redisUrl}`
          : '',
      '--sleep=0.5',
    ].filter(
      (option) => option !== '' && !given.some((arg) => arg.startsWith(`${option.split('=')[0]}=`)),
    )
    const queues = (options.queues ?? ['q']).map((queue) => `--queue=${queue}`)
    const args = [WORKER_BIN, ...queues, ...defaults, ...given]
    this.child = spawn('php', args, {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...options.env },
      stdio: ['ignore', 'inherit', 'pipe'],
    })
    createInterface({ input: this.child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        this.lines.push(JSON.parse(line) as WorkerLogLine)
      } catch {
        this.lines.push({ msg: `(not JSON) ${line}`, level: 'raw' })
      }
    })
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => resolve({ code, signal }))
    })
  }

  get pid(): number {
    return this.child.pid ?? -1
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal)
  }

  async waitForLog(
    match: (line: WorkerLogLine) => boolean,
    timeoutMs = 15_000,
  ): Promise<WorkerLogLine> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = this.lines.find(match)
      if (found) return found
      if (!this.running)
        throw new Error(`worker exited before the log line; lines: ${JSON.stringify(this.lines)}`)
      if (Date.now() > deadline)
        throw new Error(
          `timed out waiting for a worker log line; lines: ${JSON.stringify(this.lines)}`,
        )
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.signal('SIGTERM')
    return this.exitedWithin(10_000)
  }

  /** How it exited; killed (SIGKILL) if it has not within `ms`, which the result then shows. */
  async exitedWithin(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const timer = setTimeout(() => this.signal('SIGKILL'), ms)
    const result = await this.exited
    clearTimeout(timer)
    return result
  }
}
