import { randomUUID } from 'node:crypto'
import { ProblemError } from '../errors.js'
import type { BlockingClients } from './blocking.js'
import { replyStrings, type ScriptRunner } from './runner.js'

/** A job as a worker receives it from reserve. */
export interface ReservedJob {
  id: string
  queue: string
  type: string
  /** JSON text of an object. */
  payload: string
  attempts: number
  maxAttempts: number
  timeoutMs: number | null
  requestId: string | null
  createdAt: number
  priority: number
  leaseToken: string
  leaseDeadline: number
}

export type ReserveResult = { job: ReservedJob } | { job: null; waitMs: number }

/** What a lease-holding operation did; any outcome but `done` changed nothing. */
export type LeaseOutcome<T> =
  | ({ outcome: 'done' } & T)
  | { outcome: 'not_found' }
  | {
      outcome: 'lease_lost'
      state: string
      /** This lease's own earlier call ended it (its reply was lost): the state it left. */
      endedAs?: string
    }
  | { outcome: 'too_large'; field: 'result' | 'progress'; maxBytes: number }

export interface Settled {
  state: 'succeeded' | 'dead' | 'expired' | 'scheduled' | 'queued'
  /** When the job runs again (scheduled, queued) or finished (succeeded, dead, expired), epoch ms. */
  at: number
}

export interface JobError {
  message: string
  class: string
}

function reservedJob(fields: string[]): ReservedJob {
  const map = new Map<string, string>()
  for (let i = 0; i + 1 < fields.length; i += 2)
    map.set(fields[i] as string, fields[i + 1] as string)
  const text = (name: string) => map.get(name) ?? ''
  return {
    id: text('id'),
    queue: text('queue'),
    type: text('type'),
    payload: text('payload') || '{}',
    attempts: Number(text('attempts')),
    maxAttempts: Number(text('max_attempts')),
    timeoutMs: text('timeout_ms') === '' ? null : Number(text('timeout_ms')),
    requestId: text('request_id') || null,
    createdAt: Number(text('created_at')),
    priority: Number(text('priority')),
    leaseToken: text('lease_token'),
    leaseDeadline: Number(text('lease_deadline')),
  }
}

function leaseOutcome<T>(reply: string[], done: (rest: string[]) => T): LeaseOutcome<T> {
  const [status, ...rest] = reply
  if (status === 'NOT_FOUND') return { outcome: 'not_found' }
  if (status === 'LEASE_LOST') {
    const [state = '', endedAs] = rest
    return endedAs === undefined
      ? { outcome: 'lease_lost', state }
      : { outcome: 'lease_lost', state, endedAs }
  }
  const field = TOO_LARGE[status ?? '']
  if (field !== undefined) return { outcome: 'too_large', field, maxBytes: Number(rest[0]) }
  return { outcome: 'done', ...done([status ?? '', ...rest]) }
}

const TOO_LARGE: Record<string, 'result' | 'progress'> = {
  RESULT_TOO_LARGE: 'result',
  PROGRESS_TOO_LARGE: 'progress',
}

const STATE_OF_REPLY: Record<string, Settled['state']> = {
  OK: 'succeeded',
  DEAD: 'dead',
  EXPIRED: 'expired',
  SCHEDULED: 'scheduled',
  QUEUED: 'queued',
}

function settled([status, at]: string[]): Settled {
  const state = STATE_OF_REPLY[status ?? '']
  if (state === undefined) throw new Error(`jobgate: unexpected reply ${status}`)
  return { state, at: Number(at) }
}

/** Worker-side operations: reserve a job under a lease, then ack, fail, retry or heartbeat it. */
export class LeaseStore {
  constructor(
    private readonly runner: ScriptRunner,
    private readonly blocking: BlockingClients,
  ) {}

  /**
   * `token` names this reservation: a reserve sent again with the same token and worker (its
   * answer was lost) gets the job the first one leased, not a second job.
   */
  async reserve(
    queue: string,
    worker: string,
    leaseMs: number,
    token: string = randomUUID(),
  ): Promise<ReserveResult> {
    const keys = this.runner.keys(queue)
    const { settings } = this.runner
    const reply = replyStrings(
      await this.runner.run(
        'reserve',
        [keys.active, keys.scheduled, keys.dead, keys.wake, keys.events, keys.stats],
        [
          keys.base,
          worker,
          token,
          leaseMs,
          settings.jobRetentionMs,
          settings.deadRetentionMs,
          settings.eventsMaxLen,
        ],
      ),
    )
    if (reply[0] === 'JOB') return { job: reservedJob(reply.slice(1)) }
    if (reply[0] === 'TOKEN_IN_USE') {
      throw new ProblemError(
        'LEASE_TOKEN_IN_USE',
        `The lease token holds the lease of a job another worker runs; draw a new one for worker ${worker}.`,
      )
    }
    return { job: null, waitMs: Number(reply[1]) }
  }

  /**
   * Reserves a job, waiting up to `waitMs` for one: between attempts it blocks on the queue's
   * wake list (never polls), for no longer than the queue says the next job needs. `gone`
   * aborts the wait (a client that left wants nothing).
   */
  async reserveWaiting(
    queue: string,
    worker: string,
    leaseMs: number,
    waitMs: number,
    gone?: AbortSignal,
    token: string = randomUUID(),
  ): Promise<ReservedJob | null> {
    const deadline = Date.now() + waitMs
    for (;;) {
      const result = await this.reserve(queue, worker, leaseMs, token)
      if (result.job) return result.job
      const remaining = deadline - Date.now()
      if (remaining <= 0) return null
      const block = result.waitMs < 0 ? remaining : Math.min(remaining, result.waitMs)
      await this.blocking.waitForWake(this.runner.keys(queue).wake, block, gone)
      if (this.blocking.interrupted || gone?.aborted) return null
    }
  }

  /**
   * Undoes the lease `job` was given, when its reserve's caller left before receiving it: the
   * job is queued again, in front, its attempt uncounted. False when the lease is no longer that
   * grant (a reserve sent again with its token received it since), which is then kept.
   */
  async release(queue: string, job: ReservedJob): Promise<boolean> {
    const keys = this.runner.keys(queue)
    const reply = replyStrings(
      await this.runner.run(
        'release',
        [keys.job(job.id), keys.active, keys.wake, keys.events, keys.stats],
        [keys.base, job.id, job.leaseToken, job.leaseDeadline, this.runner.settings.eventsMaxLen],
      ),
    )
    return reply[0] === 'RELEASED'
  }

  async ack(
    queue: string,
    id: string,
    token: string,
    result: string | null,
  ): Promise<LeaseOutcome<Settled>> {
    const keys = this.runner.keys(queue)
    const { settings } = this.runner
    const reply = await this.runner.run(
      'ack',
      [keys.job(id), keys.active, keys.events, keys.stats],
      [id, token, result ?? '', settings.jobRetentionMs, settings.eventsMaxLen, keys.base],
    )
    return leaseOutcome(replyStrings(reply), settled)
  }

  async fail(
    queue: string,
    id: string,
    token: string,
    error: JobError,
  ): Promise<LeaseOutcome<Settled>> {
    const keys = this.runner.keys(queue)
    const { settings } = this.runner
    const reply = await this.runner.run(
      'fail',
      [keys.job(id), keys.active, keys.dead, keys.events, keys.stats],
      [
        id,
        token,
        error.message,
        error.class,
        settings.deadRetentionMs,
        settings.eventsMaxLen,
        keys.base,
      ],
    )
    return leaseOutcome(replyStrings(reply), settled)
  }

  /** `delayMs` null = the job's back-off policy. */
  async retry(
    queue: string,
    id: string,
    token: string,
    error: JobError,
    delayMs: number | null,
  ): Promise<LeaseOutcome<Settled>> {
    const keys = this.runner.keys(queue)
    const { settings } = this.runner
    const reply = await this.runner.run(
      'retry',
      [keys.job(id), keys.active, keys.scheduled, keys.dead, keys.wake, keys.events, keys.stats],
      [
        id,
        token,
        error.message,
        error.class,
        delayMs ?? -1,
        Math.random(),
        settings.deadRetentionMs,
        settings.eventsMaxLen,
        keys.base,
        settings.jobRetentionMs,
      ],
    )
    return leaseOutcome(replyStrings(reply), settled)
  }

  /** `progress` null = unchanged. */
  async heartbeat(
    queue: string,
    id: string,
    token: string,
    leaseMs: number,
    progress: string | null,
  ): Promise<LeaseOutcome<{ leaseDeadline: number }>> {
    const keys = this.runner.keys(queue)
    const reply = await this.runner.run(
      'heartbeat',
      [keys.job(id), keys.active],
      [id, token, leaseMs, progress ?? ''],
    )
    return leaseOutcome(replyStrings(reply), ([, deadline]) => ({
      leaseDeadline: Number(deadline),
    }))
  }
}
