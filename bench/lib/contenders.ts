import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { newApiKey } from '../../src/auth.js'
import { APP_CPU, launch, ROOT, type Spawned, waitFor } from './proc.js'

export interface Gateway {
  name: string
  what: string
  /** Headers and env for wrk. */
  apiKey?: string
  /** More environment for the wrk script (e.g. WRK_PREFER). */
  wrkEnv?: Record<string, string>
  /** Replicas of the benchmark's Redis this gateway is measured with (none unless set). */
  replicas?: number
  start(redisUrl: string, port: number, env?: Record<string, string>): Spawned
}

const BENCH_KEY = newApiKey('bench', ['produce', 'read', 'work'])

const tsx = (file: string) => ['--import', 'tsx', file]

/** Extra node flags for jobgate, e.g. BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=prof" to profile. */
const nodeArgs = () => (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean)

/** A baseline gateway in bench/baselines/, run from source. */
function baseline(file: string, name: string, what: string): Gateway {
  return {
    name,
    what,
    start: (redisUrl, port) =>
      launch(APP_CPU, process.execPath, tsx(`bench/baselines/${file}`), {
        PORT: String(port),
        REDIS_URL: redisUrl,
      }),
  }
}

export const BARE = baseline(
  'bare-fastify.ts',
  'bare Fastify (HTTP ceiling)',
  'a Fastify route that parses the body and answers 202; no Redis',
)

export const LPUSH = baseline(
  'lpush-gateway.ts',
  'Fastify + LPUSH',
  'one LPUSH of the body; no idempotency, record, status, validation or logging',
)

export const BULLMQ = baseline(
  'bullmq-gateway.ts',
  'Fastify + BullMQ',
  'Queue.add with the Idempotency-Key as the BullMQ job id',
)

/** The node flags and entry point `npm start` runs in the checkout at `root`. */
function startArgs(root: string): string[] {
  const { scripts } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    scripts: { start: string }
  }
  // `exec node …` in newer checkouts, `node …` in older ones (--compare builds them).
  const [command, ...args] = scripts.start.replace(/^exec /, '').split(' ')
  if (command !== 'node') throw new Error(`${root}: npm start does not run node: ${scripts.start}`)
  return args.map((arg) => (arg.startsWith('-') ? arg : join(root, arg)))
}

/**
 * jobgate built in `root`, started as its `npm start` does, with production settings: keys,
 * rate limits, breaker, logs.
 */
export function jobgateAt(root: string, name: string): Gateway {
  const args = startArgs(root)
  return {
    name,
    what: 'production settings: API key auth, rate limit (set high), breaker, idempotency, access log at info, metrics',
    apiKey: BENCH_KEY.key,
    start: (redisUrl, port, env = {}) =>
      launch(APP_CPU, process.execPath, [...nodeArgs(), ...args], {
        NODE_ENV: 'production',
        PORT: String(port),
        REDIS_URL: redisUrl,
        API_KEYS: BENCH_KEY.entry,
        RATE_LIMIT: '10000000/1s',
        LOG_LEVEL: 'info',
        MAX_QUEUE_DEPTH: '100000000',
        ...env,
      }),
  }
}

/** jobgate as shipped (this checkout's dist/). */
export const JOBGATE = jobgateAt(ROOT, 'jobgate')

/** The same gateway, with producers asking for the short `202` (`Prefer: return=minimal`). */
export const JOBGATE_MINIMAL: Gateway = {
  ...JOBGATE,
  name: 'jobgate, Prefer: return=minimal',
  what: 'as jobgate; the producer asks for the short 202 (the job id and state, not the whole job)',
  wrkEnv: { WRK_PREFER: 'return=minimal' },
}

/** The same gateway answering only once a replica of Redis holds the job. */
export const JOBGATE_REPLICATED: Gateway = {
  ...JOBGATE,
  name: 'jobgate, REDIS_WAIT_REPLICAS=1',
  what: 'as jobgate, with one replica of Redis (on the Redis core), each 202 sent once the replica has the job (Redis WAIT)',
  replicas: 1,
  start: (redisUrl, port, env = {}) =>
    JOBGATE.start(redisUrl, port, { REDIS_WAIT_REPLICAS: '1', ...env }),
}

export async function waitForHttp(port: number): Promise<void> {
  await waitFor(
    async () => {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`)
      return res.status < 500
    },
    30_000,
    `a server on port ${port}`,
  )
}
