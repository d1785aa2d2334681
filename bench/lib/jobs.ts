import { loadConfig } from '../../src/config.js'
import { storeSettings } from '../../src/plugins/store.js'
import { createRedisClient, waitUntilReady } from '../../src/queue/connection.js'
import { Store } from '../../src/queue/store.js'
import { newJob } from '../../src/submission.js'

/** The job every scenario submits: the `noop` handler, a small payload, defaults otherwise. */
export const NOOP_BODY = {
  type: 'noop',
  payload: { to: 'ada@example.com', n: 42 },
  max_attempts: 3,
  priority: 5,
  backoff: { type: 'exponential' as const, delay_ms: 1000, max_delay_ms: 3_600_000, jitter: true },
}

/**
 * The product's own store, to fill queues fast (batches through the enqueue script). `env`
 * overrides settings, e.g. the production depth check (off here by default).
 */
export async function openStore(
  redisUrl: string,
  env: Record<string, string> = {},
): Promise<Store> {
  const config = loadConfig({ REDIS_URL: redisUrl, MAX_QUEUE_DEPTH: '0', ...env })
  const client = createRedisClient({
    url: config.redisUrl,
    clusterNodes: config.redisClusterNodes,
    sentinel: config.redisSentinel,
    commandTimeoutMs: 30_000,
  })
  if (!(await waitUntilReady(client, 10_000))) throw new Error('bench: Redis is not reachable')
  return new Store(client, { settings: storeSettings(config) })
}

/** Enqueues `count` noop jobs on `queue`, 500 per pipeline, reporting progress every 100 k. */
export async function fill(
  store: Store,
  queue: string,
  count: number,
  onProgress: (done: number) => void = () => {},
): Promise<void> {
  const submitter = { queue, requestId: 'bench-fill', client: 'bench' }
  let lastReport = 0
  for (let done = 0; done < count; ) {
    const size = Math.min(500, count - done)
    const jobs = Array.from({ length: size }, () => newJob(NOOP_BODY, submitter, null))
    const results = await store.jobs.enqueueMany(queue, jobs)
    if (results.some((result) => result.outcome !== 'created')) {
      throw new Error(`bench: filling ${queue} failed`)
    }
    done += size
    if (done - lastReport >= 100_000) {
      lastReport = done
      onProgress(done)
    }
  }
}
