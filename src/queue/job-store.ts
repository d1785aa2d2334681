import type { ProblemError } from '../errors.js'
import type { Admission, QueueRegistry } from './queue-registry.js'
import {
  type CancelableState,
  decodeJob,
  decodePage,
  type JobPage,
  type JobRecord,
  type JobState,
  type NewJob,
  newJobFields,
  type PageCursor,
  type WaitingState,
} from './records.js'
import { replyList, replyStrings, type ScriptRunner } from './runner.js'
import { queueScript } from './scripts.js'

/** Entries a bulk cancel takes per script call. */
const CANCEL_BATCH = 1000

export type EnqueueResult =
  /** `first`: the queue's first job (a new queue, a deleted one, or one Redis lost). */
  | { outcome: 'created'; job: JobRecord; first: boolean }
  | { outcome: 'replayed'; job: JobRecord }
  | { outcome: 'conflict'; jobId: string }
  | { outcome: 'queue_full'; depth: number }
  | { outcome: 'expires_before_due'; dueInMs: number }
  /** The queue is new and the registry holds MAX_QUEUES already; nothing was written. */
  | { outcome: 'too_many_queues' }
  /** In a batch: this job's call failed (503: Redis refused it for now; 500: a bug); it wrote nothing. */
  | { outcome: 'refused'; problem: ProblemError }

export type CancelResult =
  | { outcome: 'canceled'; job: JobRecord }
  | { outcome: 'not_found' }
  | { outcome: 'not_cancelable'; state: string }

const RETRY_SUBMISSION =
  'Retry with the same Idempotency-Key: a job that was kept is replayed, one that was lost is created again.'

/** True for an outcome the producer is told was accepted. */
function accepted(result: EnqueueResult): boolean {
  return result.outcome === 'created' || result.outcome === 'replayed'
}

function created(result: EnqueueResult): boolean {
  return result.outcome === 'created'
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

/** The enqueue script's reply as an outcome. */
function enqueueResult(job: NewJob, reply: unknown): EnqueueResult {
  const [status, ...rest] = replyStrings(reply)
  switch (status) {
    case 'CREATED': {
      const [state, createdAt, runAt, expiresAt, first] = rest
      return {
        outcome: 'created',
        job: createdRecord(job, state as JobState, Number(createdAt), Number(runAt), expiresAt),
        first: first === '1',
      }
    }
    case 'REPLAYED': {
      const existing = decodeJob(rest.slice(1))
      if (existing === null) throw new Error('jobgate: replayed job has no record')
      return { outcome: 'replayed', job: existing }
    }
    case 'CONFLICT':
      return { outcome: 'conflict', jobId: rest[0] ?? '' }
    case 'QUEUE_FULL':
      return { outcome: 'queue_full', depth: Number(rest[0]) }
    case 'EXPIRES_BEFORE_DUE':
      return { outcome: 'expires_before_due', dueInMs: Number(rest[0]) }
    case 'TOO_MANY_QUEUES':
      return { outcome: 'too_many_queues' }
    default:
      throw new Error(`jobgate: unexpected enqueue reply ${status}`)
  }
}

/** Producer-side job operations: submit, read, cancel. */
export class JobStore {
  constructor(
    private readonly runner: ScriptRunner,
    private readonly registry: QueueRegistry,
  ) {}

  async enqueue(job: NewJob): Promise<EnqueueResult> {
    const admission = await this.registry.admit(job.queue)
    const { keys, args } = this.enqueueCall(job, admission)
    const reply = await this.unlessFailed(job.queue, admission, () =>
      this.runner.run('enqueue', keys, args),
    )
    const result = enqueueResult(job, reply)
    await this.settleRegistration(job.queue, admission, [result])
    // Checked here, not only in confirmWrites: without replicas the hot path skips an await.
    if (this.runner.waitsForReplicas && accepted(result)) {
      await this.runner.confirmWrites(job.queue, RETRY_SUBMISSION)
    }
    return result
  }

  /**
   * Several jobs of one queue in one round trip: one enqueue script call per job, pipelined.
   * Each call is atomic on its own, so each job gets its own outcome; results are in order.
   */
  async enqueueMany(queue: string, jobs: readonly NewJob[]): Promise<EnqueueResult[]> {
    const admission = await this.registry.admit(queue)
    const settled = await this.unlessFailed(queue, admission, () =>
      this.runner.pipelineSettled((pipeline) => {
        for (const job of jobs) {
          const { keys, args } = this.enqueueCall(job, admission)
          queueScript(pipeline, 'enqueue', keys, args)
        }
      }),
    )
    const results = jobs.map((job, index): EnqueueResult => {
      const call = settled[index]
      if (call === undefined) throw new Error('jobgate: a batch reply is missing')
      return 'reply' in call ? enqueueResult(job, call.reply) : { outcome: 'refused', ...call }
    })
    await this.settleRegistration(queue, admission, results)
    if (this.runner.waitsForReplicas && results.some(accepted)) {
      await this.runner.confirmWrites(queue, RETRY_SUBMISSION)
    }
    return results
  }

  /** The enqueue call; when it fails, a name this submission added is taken out again. */
  private async unlessFailed<T>(queue: string, admission: Admission, call: () => Promise<T>) {
    try {
      return await call()
    } catch (error) {
      // The scripts may have run even so: withdraw keeps a name whose queue has a stats hash.
      if (admission === 'added') await this.registry.withdraw(queue).catch(() => undefined)
      throw error
    }
  }

  /**
   * The registry after the enqueue scripts: a queue they created a first job in is added again
   * (a delete may have taken the name since the admission; a `full` one existed after all, its
   * name lost); one this submission added while they created nothing is taken out again. Best
   * effort once a job exists: its 202 stands, and the next submission after a second adds a
   * name that failed here.
   */
  private async settleRegistration(
    queue: string,
    admission: Admission,
    results: readonly EnqueueResult[],
  ): Promise<void> {
    const first = results.some((result) => result.outcome === 'created' && result.first)
    if (first || (admission === 'full' && results.some(created))) {
      await this.registry.add(queue).catch(() => this.registry.forget(queue))
    } else if (admission === 'added' && !results.some(created)) {
      await this.registry.withdraw(queue).catch(() => undefined)
    }
  }

  private enqueueCall(
    job: NewJob,
    admission: Admission,
  ): { keys: string[]; args: (string | number)[] } {
    const { settings } = this.runner
    const keys = this.runner.keys(job.queue)
    return {
      keys: [
        keys.job(job.id),
        keys.idempotency(job.client, job.idempotency?.key ?? ''),
        keys.ready(job.priority),
        keys.scheduled,
        keys.events,
        keys.wake,
        keys.stats,
      ],
      args: [
        job.id,
        job.idempotency?.fingerprint ?? '',
        settings.idempotencyTtlMs,
        job.delayMs,
        job.runAt ?? 0,
        job.ttlMs ?? 0,
        settings.maxQueueDepth,
        settings.eventsMaxLen,
        keys.base,
        admission === 'full' ? '1' : '0',
        ...newJobFields(job),
      ],
    }
  }

  async get(queue: string, id: string): Promise<JobRecord | null> {
    const [, ...flat] = replyStrings(
      await this.runner.run('status', [this.runner.keys(queue).job(id)], []),
    )
    return decodeJob(flat)
  }

  /**
   * One page of the jobs waiting in `state`, in the order they leave it: `offset` entries
   * skipped from the first, or from the entry `after` names (a page's `next`).
   */
  async list(
    queue: string,
    state: WaitingState,
    offset: number,
    limit: number,
    after: PageCursor | null = null,
  ): Promise<JobPage> {
    const keys = this.runner.keys(queue)
    return decodePage(
      replyList(
        await this.runner.run(
          'job-list',
          [keys.scheduled, keys.active],
          [keys.base, state, offset, limit, after?.score ?? '', after?.id ?? ''],
        ),
      ),
    )
  }

  /**
   * Cancels every job waiting in `state`, a batch per script call (each atomic); returns how
   * many. Jobs submitted meanwhile may or may not be among them.
   */
  async cancelWaiting(queue: string, state: CancelableState): Promise<number> {
    const keys = this.runner.keys(queue)
    const { settings } = this.runner
    let canceled = 0
    for (;;) {
      const [, count, taken] = replyStrings(
        await this.runner.run(
          'cancel-waiting',
          [keys.scheduled, keys.events, keys.stats],
          [keys.base, state, CANCEL_BATCH, settings.jobRetentionMs, settings.eventsMaxLen],
        ),
      )
      canceled += Number(count)
      if (Number(taken) < CANCEL_BATCH) break
    }
    if (canceled > 0) await this.runner.confirmWrites(queue, 'Repeating it is safe.')
    return canceled
  }

  async cancel(queue: string, id: string): Promise<CancelResult> {
    const keys = this.runner.keys(queue)
    const [status, state] = replyStrings(
      await this.runner.run(
        'cancel',
        [keys.job(id), keys.scheduled, keys.events, keys.stats],
        [id, keys.base, this.runner.settings.jobRetentionMs, this.runner.settings.eventsMaxLen],
      ),
    )
    if (status === 'NOT_FOUND') return { outcome: 'not_found' }
    if (status === 'NOT_CANCELABLE') return { outcome: 'not_cancelable', state: state ?? '' }
    await this.runner.confirmWrites(
      queue,
      'Read the job to see whether the cancel held; retrying it is safe.',
    )
    const job = await this.get(queue, id)
    if (job === null) return { outcome: 'not_found' }
    return { outcome: 'canceled', job }
  }
}
