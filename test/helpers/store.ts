import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Test } from 'tap'
import { createRedisClient, waitUntilReady } from '../../src/queue/connection.js'
import type { NewJob } from '../../src/queue/records.js'
import { Store, type StoreSettings } from '../../src/queue/store.js'
import { RedisServer } from './redis-server.js'

export const TEST_SETTINGS: StoreSettings = {
  keyPrefix: 'jobgate',
  idempotencyTtlMs: 86_400_000,
  jobRetentionMs: 86_400_000,
  deadRetentionMs: 7 * 86_400_000,
  eventsMaxLen: 10_000,
  maxQueueDepth: 0,
  maxQueues: 0,
}

/** The gateway's store on a private redis-server, plus a plain client for assertions. */
export async function startStore(
  t: Test,
  settings: Partial<StoreSettings> = {},
  redis?: RedisServer,
): Promise<{ store: Store; client: Redis; redis: RedisServer }> {
  const server = redis ?? (await RedisServer.start())
  if (!redis) t.teardown(() => server.destroy())
  const store = new Store(createRedisClient({ url: server.url }), {
    settings: { ...TEST_SETTINGS, ...settings },
  })
  const client = server.client()
  t.teardown(async () => {
    await store.close()
    client.disconnect()
  })
  if (!(await waitUntilReady(store.client, 5000))) throw new Error('redis did not become ready')
  return { store, client, redis: server }
}

/** A job for `store.jobs.enqueue`, with the gateway's defaults. */
export function newJob(queue: string, overrides: Partial<NewJob> = {}): NewJob {
  return {
    id: randomUUID(),
    queue,
    type: 'test',
    payload: '{}',
    priority: 5,
    maxAttempts: 3,
    timeoutMs: null,
    backoff: { type: 'exponential', delayMs: 1000, maxDelayMs: 3_600_000, jitter: false },
    delayMs: 0,
    runAt: null,
    ttlMs: null,
    requestId: randomUUID(),
    client: 'anonymous',
    idempotency: null,
    ...overrides,
  }
}

export async function enqueue(
  store: Store,
  queue: string,
  overrides: Partial<NewJob> = {},
): Promise<string> {
  const result = await store.jobs.enqueue(newJob(queue, overrides))
  if (result.outcome !== 'created') throw new Error(`enqueue: ${result.outcome}`)
  return result.job.id
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
