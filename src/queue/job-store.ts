import { ProblemError } from '../errors.js'
import { isUnavailableError } from './connection.js'
import { QueueKeys, registryKey } from './keys.js'
import { decodeJob, type JobRecord, type JobState, type NewJob, newJobFields } from './records.js'
import { type RedisClient, runScript, type ScriptName } from './scripts.js'

export interface JobStoreSettings {
  keyPrefix: string
  idempotencyTtlMs: number
  eventsMaxLen: number
  /** Queued + scheduled jobs a queue may hold; 0 = unlimited. */
  maxQueueDepth: number
}

export type EnqueueResult =
  | { outcome: 'created'; job: JobRecord }
  | { outcome: 'replayed'; job: JobRecord }
  | { outcome: 'conflict'; jobId: string }
  | { outcome: 'queue_full'; depth: number }

export interface JobSnapshot {
  /** Redis server time when the record was read, epoch ms. */
  now: number
  job: JobRecord
}

const KEY_CACHE_LIMIT = 10_000

function asStrings(reply: unknown): string[] {
  if (!Array.isArray(reply)) throw new Error('jobgate: unexpected script reply')
  return reply.map((item) => String(item))
}

const UNAVAILABLE_DETAIL =
  'Redis did not answer. Retry shortly; a job submission is safe to retry with the same Idempotency-Key.'

/** Redis being unreachable is a 503 for the caller, never a 500 or a hanging request. */
async function unavailableAsProblem<T>(pending: Promise<T>): Promise<T> {
  try {
    return await pending
  } catch (error) {
    if (!isUnavailableError(error)) throw error
    throw new ProblemError('REDIS_UNAVAILABLE', UNAVAILABLE_DETAIL, {
      headers: { 'retry-after': '1' },
      cause: error,
    })
  }
}

/** The record of a job the enqueue script just created, without reading it back. */
function createdRecord(
  job: NewJob,
  state: JobState,
  createdAt: number,
  runAt: number,
  expiresAt: string | undefined,
): JobRecord {
  return {
    id: job.id,
    queue: job.queue,
    type: job.type,
    state,
    payload: job.payload,
    priority: job.priority,
    attempts: 0,
    maxAttempts: job.maxAttempts,
    timeoutMs: job.timeoutMs,
    backoff: job.backoff,
    createdAt,
    runAt,
    updatedAt: createdAt,
    expiresAt: expiresAt ? Number(expiresAt) : null,
    startedAt: null,
    finishedAt: null,
    leaseDeadline: null,
    worker: null,
    progress: null,
    result: null,
    lastError: null,
    requestId: job.requestId,
    idempotencyKey: job.idempotency?.key ?? null,
    history: [{ at: createdAt, state }],
  }
}

/** The job operations of the gateway, one protocol script each. The only code that knows keys. */
export class JobStore {
  private readonly keysByQueue = new Map<string, QueueKeys>()
  private readonly registered = new Set<string>()

  constructor(
    private readonly client: RedisClient,
    private readonly settings: JobStoreSettings,
  ) {}

  keys(queue: string): QueueKeys {
    let keys = this.keysByQueue.get(queue)
    if (keys === undefined) {
      if (this.keysByQueue.size >= KEY_CACHE_LIMIT) this.keysByQueue.clear()
      keys = new QueueKeys(this.settings.keyPrefix, queue)
      this.keysByQueue.set(queue, keys)
    }
    return keys
  }

  async enqueue(job: NewJob): Promise<EnqueueResult> {
    const keys = this.keys(job.queue)
    const idempotencyKey = job.idempotency
      ? keys.idempotency(job.client, job.idempotency.key)
      : keys.idempotency(job.client, '')
    const [, reply] = await Promise.all([
      this.register(job.queue),
      this.script(
        'enqueue',
        [
          keys.job(job.id),
          idempotencyKey,
          keys.ready(job.priority),
          keys.scheduled,
          keys.events,
          keys.wake,
          keys.stats,
        ],
        [
          job.id,
          job.idempotency?.fingerprint ?? '',
          this.settings.idempotencyTtlMs,
          job.delayMs,
          job.runAt ?? 0,
          job.ttlMs ?? 0,
          this.settings.maxQueueDepth,
          this.settings.eventsMaxLen,
          keys.base,
          ...newJobFields(job),
        ],
      ),
    ])
    const [status, ...rest] = asStrings(reply)
    switch (status) {
      case 'CREATED': {
        const [state, createdAt, runAt, expiresAt] = rest
        return {
          outcome: 'created',
          job: createdRecord(job, state as JobState, Number(createdAt), Number(runAt), expiresAt),
        }
      }
      case 'REPLAYED': {
        const job = decodeJob(rest.slice(1))
        if (job === null) throw new Error('jobgate: replayed job has no record')
        return { outcome: 'replayed', job }
      }
      case 'CONFLICT':
        return { outcome: 'conflict', jobId: rest[0] ?? '' }
      case 'QUEUE_FULL':
        return { outcome: 'queue_full', depth: Number(rest[0]) }
      default:
        throw new Error(`jobgate: unexpected enqueue reply ${status}`)
    }
  }

  async get(queue: string, id: string): Promise<JobSnapshot | null> {
    const [now, ...flat] = asStrings(await this.script('status', [this.keys(queue).job(id)], []))
    const job = decodeJob(flat)
    return job === null ? null : { now: Number(now), job }
  }

  private async script(
    name: ScriptName,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    return unavailableAsProblem(runScript(this.client, name, keys, args))
  }

  /** Adds the queue to the cross-queue registry, once per process and queue. */
  private async register(queue: string): Promise<void> {
    if (this.registered.has(queue)) return
    await unavailableAsProblem(this.client.sadd(registryKey(this.settings.keyPrefix), queue))
    if (this.registered.size >= KEY_CACHE_LIMIT) this.registered.clear()
    this.registered.add(queue)
  }

  async ping(): Promise<void> {
    await unavailableAsProblem(this.client.ping())
  }
}
