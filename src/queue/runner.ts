import type { ChainableCommander } from 'ioredis'
import { ProblemError } from '../errors.js'
import { isBreakerOpen, type RedisBreaker } from './breaker.js'
import { isUnavailableError } from './connection.js'
import { QueueKeys } from './keys.js'
import type { ReplicaBarrier } from './replica-barrier.js'
import { type RedisClient, runScript, type ScriptName } from './scripts.js'

export interface StoreSettings {
  keyPrefix: string
  idempotencyTtlMs: number
  /** Retention of succeeded, canceled and expired records, ms. */
  jobRetentionMs: number
  /** Retention of dead records, ms. */
  deadRetentionMs: number
  eventsMaxLen: number
  /** Queued + scheduled jobs a queue may hold; 0 = unlimited. */
  maxQueueDepth: number
  /** Queues the registry may hold before a submission to a new one is refused; 0 = unlimited. */
  maxQueues: number
}

const KEY_CACHE_LIMIT = 10_000
/** No reply for this long, and a command timed out: the connection is taken for dead. */
const SILENT_MS = 3000

const RETRY_SAFELY = 'a job submission is safe to retry with the same Idempotency-Key.'

/**
 * Redis being unreachable is a 503 for the caller, never a 500 or a hanging request.
 * `retryAfterSeconds` comes from the breaker when it is open.
 */
export async function unavailableAsProblem<T>(
  pending: Promise<T>,
  retryAfterSeconds = 1,
): Promise<T> {
  try {
    return await pending
  } catch (error) {
    throw asProblem(error, retryAfterSeconds)
  }
}

/** The 503 problem for an error that means Redis is unavailable; any other error as it is. */
function asProblem(error: unknown, retryAfterSeconds: number): unknown {
  if (!isUnavailableError(error)) return error
  const detail = isBreakerOpen(error)
    ? `Redis is failing; calls are paused for ${retryAfterSeconds} s. Retry then: ${RETRY_SAFELY}`
    : error instanceof Error && error.name === 'ReplyError'
      ? `Redis refused the call for now (${error.message.split(' ')[0]}). Retry shortly: ${RETRY_SAFELY}`
      : `Redis did not answer. Retry shortly: ${RETRY_SAFELY}`
  return new ProblemError('REDIS_UNAVAILABLE', detail, {
    headers: { 'retry-after': String(retryAfterSeconds) },
    cause: error,
  })
}

/** One failed call of several as its own problem: 503 when Redis is unavailable, else 500. */
function callProblem(error: Error): ProblemError {
  if (isUnavailableError(error)) return asProblem(error, 1) as ProblemError
  return new ProblemError('INTERNAL_ERROR', 'This call failed unexpectedly; it wrote nothing.', {
    cause: error,
  })
}

/** A script reply as a list (its items as Redis sent them; nested lists stay lists). */
export function replyList(reply: unknown): unknown[] {
  if (!Array.isArray(reply)) throw new Error('jobgate: unexpected script reply')
  return reply
}

/** A script reply as a list of strings. */
export function replyStrings(reply: unknown): string[] {
  return replyList(reply).map((item) => String(item))
}

/** Runs protocol scripts on one client, with the key layout of each queue cached. */
export class ScriptRunner {
  private readonly keysByQueue = new Map<string, QueueKeys>()
  private lastReplyAt = Date.now()

  constructor(
    readonly client: RedisClient,
    readonly settings: StoreSettings,
    readonly breaker: RedisBreaker,
    private readonly barrier: ReplicaBarrier | null = null,
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

  run(
    name: ScriptName,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    return this.command(() => runScript(this.client, name, keys, args))
  }

  /**
   * Pipelined calls in one round trip, through the breaker like one command. Any call's error
   * fails the whole; the replies come back in order. `atomic`: in one MULTI, so no other
   * client's write lands between them (every key in one slot).
   */
  pipeline(
    queue: (pipeline: ChainableCommander) => void,
    { atomic = false }: { atomic?: boolean } = {},
  ): Promise<unknown[]> {
    return this.command(async () =>
      (await this.exec(queue, atomic)).map(([error, reply]) => {
        if (error) throw error
        return reply
      }),
    )
  }

  /**
   * Pipelined calls whose outcomes stay apart, since what the others wrote is written: a call
   * Redis refused for now (out of memory, say) is its own 503 problem, a call that failed
   * otherwise (a bug: every script checks its arguments before it writes) its own 500. Only
   * when every call failed does the whole fail.
   */
  pipelineSettled(
    queue: (pipeline: ChainableCommander) => void,
  ): Promise<({ reply: unknown } | { problem: ProblemError })[]> {
    return this.command(async () => {
      const results = await this.exec(queue)
      const errors = results.flatMap(([error]) => (error ? [error] : []))
      if (errors.length > 0 && errors.length === results.length) {
        throw errors.find((error) => !isUnavailableError(error)) ?? errors[0]
      }
      return results.map(([error, reply]) => (error ? { problem: callProblem(error) } : { reply }))
    })
  }

  private async exec(queue: (pipeline: ChainableCommander) => void, atomic = false) {
    const pipeline = atomic ? this.client.multi() : this.client.pipeline()
    queue(pipeline)
    return (await pipeline.exec()) ?? []
  }

  /** True when writes are confirmed on replicas before they are answered. */
  get waitsForReplicas(): boolean {
    return this.barrier !== null
  }

  /**
   * With replicas to wait for: returns once they hold every write made so far, or throws the
   * 503 problem `NOT_REPLICATED` (the writes are on the primary, not confirmed on replicas).
   */
  async confirmWrites(queue: string, retry: string): Promise<void> {
    const barrier = this.barrier
    if (barrier === null) return
    // Not through the breaker: the write before it was, and a slow replica is not an outage.
    const acked = await unavailableAsProblem(barrier.confirm(this.keys(queue)))
    const { replicas, timeoutMs } = barrier.settings
    if (acked >= replicas) return
    throw new ProblemError(
      'NOT_REPLICATED',
      `The change is on the Redis primary, but ${acked} of the ${replicas} replica(s) required confirmed it within ${timeoutMs} ms, so a failover could still lose it. ${retry}`,
      { headers: { 'retry-after': '1' } },
    )
  }

  /** A Redis call of the request path, through the breaker, with unavailability as a 503. */
  async command<T>(call: () => Promise<T>): Promise<T> {
    try {
      const reply = await this.breaker.run(call)
      this.lastReplyAt = Date.now()
      return reply
    } catch (error) {
      this.reconnectIfSilent(error)
      throw asProblem(error, this.breaker.retryAfterSeconds())
    }
  }

  /**
   * A command timed out and nothing has answered for a while on a connection ioredis thinks
   * ready: it may have gone silent (a host that vanished without a reset), and ioredis keeps
   * such a connection for as long as TCP does. Start a fresh one; one being re-established is
   * left to finish.
   */
  private reconnectIfSilent(error: unknown): void {
    if (!(error instanceof Error) || error.message !== 'Command timed out') return
    if (Date.now() - this.lastReplyAt < SILENT_MS || this.client.status !== 'ready') return
    this.lastReplyAt = Date.now()
    this.client.disconnect(true)
  }
}
