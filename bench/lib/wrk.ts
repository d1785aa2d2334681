import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { INFRA_CPU, ROOT } from './proc.js'

const run = promisify(execFile)

export interface WrkResult {
  requests: number
  rps: number
  p50Ms: number
  p99Ms: number
  /** Non-2xx answers plus socket errors. */
  errors: number
  /** The errors by kind, as wrk reports them (absent in results from before it was kept). */
  errorKinds?: { non2xx: number; connect: number; read: number; write: number; timeout: number }
}

export interface WrkOptions {
  url: string
  script: string
  seconds: number
  connections?: number
  env?: Record<string, string>
}

function ms(text: string | undefined): number {
  const match = /([\d.]+)(us|ms|s)/.exec(text ?? '')
  if (!match) return Number.NaN
  const value = Number(match[1])
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value
}

/** wrk, the C load generator from Debian, on the infrastructure core with one thread. */
export async function wrk(options: WrkOptions): Promise<WrkResult> {
  const { stdout } = await run(
    'taskset',
    [
      '-c',
      INFRA_CPU,
      'wrk',
      '-t1',
      `-c${options.connections ?? 50}`,
      `-d${options.seconds}s`,
      '--latency',
      '-s',
      `${ROOT}/bench/wrk/${options.script}`,
      options.url,
    ],
    { env: { PATH: process.env.PATH ?? '', ...options.env }, maxBuffer: 1 << 20 },
  )
  return parseWrk(stdout)
}

/** What wrk's report (with `--latency`) says. */
export function parseWrk(stdout: string): WrkResult {
  const number = (pattern: RegExp) => Number(pattern.exec(stdout)?.[1] ?? 0)
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout)
  const [connect, read, write, timeout] = (socket?.slice(1) ?? []).map(Number)
  const errorKinds = {
    non2xx: number(/Non-2xx or 3xx responses: (\d+)/),
    connect: connect ?? 0,
    read: read ?? 0,
    write: write ?? 0,
    timeout: timeout ?? 0,
  }
  return {
    requests: number(/(\d+) requests in/),
    rps: number(/Requests\/sec:\s+([\d.]+)/),
    p50Ms: ms(/\s50%\s+(\S+)/.exec(stdout)?.[1]),
    p99Ms: ms(/\s99%\s+(\S+)/.exec(stdout)?.[1]),
    errors: Object.values(errorKinds).reduce((sum, count) => sum + count, 0),
    errorKinds,
  }
}
