import { randomUUID } from 'node:crypto'
import { ProblemError } from './errors.js'
import { fingerprint } from './idempotency.js'
import { type JobView, jobLocation, jobView } from './job-view.js'
import type { EnqueueResult } from './queue/job-store.js'
import type { BackoffType, JobState, NewJob } from './queue/records.js'

/**
 * A job submission, single or in a batch: from a validated `EnqueueRequest` to the job to
 * store, and from the enqueue script's outcome to what the producer is told.
 */

/** The `EnqueueRequest` schema of openapi.yaml, after validation filled in its defaults. */
export interface EnqueueBody {
  type: string
  payload: Record<string, unknown>
  max_attempts: number
  delay_ms?: number
  run_at?: string
  ttl_ms?: number
  priority: number
  timeout_ms?: number
  backoff: { type: BackoffType; delay_ms: number; max_delay_ms: number; jitter: boolean }
}

/** A batch item (the `BatchJob` schema): a submission with its own idempotency key. */
export interface BatchJob extends EnqueueBody {
  idempotency_key?: string
}

export interface Submitter {
  queue: string
  requestId: string
  /** The API key's name: idempotency keys are scoped by it. */
  client: string
}

export function newJob(body: EnqueueBody, submitter: Submitter, key: string | null): NewJob {
  return {
    id: randomUUID(),
    queue: submitter.queue,
    type: body.type,
    payload: JSON.stringify(body.payload),
    priority: body.priority,
    maxAttempts: body.max_attempts,
    timeoutMs: body.timeout_ms ?? null,
    backoff: {
      type: body.backoff.type,
      delayMs: body.backoff.delay_ms,
      maxDelayMs: body.backoff.max_delay_ms,
      jitter: body.backoff.jitter,
    },
    delayMs: body.delay_ms ?? 0,
    // A past run_at runs now, one before 1970 too (the enqueue script takes no negative time).
    runAt: body.run_at === undefined ? null : Math.max(0, Date.parse(body.run_at)),
    ttlMs: body.ttl_ms ?? null,
    requestId: submitter.requestId,
    client: submitter.client,
    idempotency: key === null ? null : { key, fingerprint: fingerprint(comparable(body)) },
  }
}

/**
 * The body as its fingerprint sees it: the same job written two ways is the same request
 * (`delay_ms: 0` or none; `run_at` with any offset or precision, as the instant it names).
 */
function comparable(body: EnqueueBody): EnqueueBody {
  const { delay_ms: delay, run_at: runAt, ...rest } = body
  return {
    ...rest,
    ...(delay ? { delay_ms: delay } : {}),
    ...(runAt === undefined ? {} : { run_at: new Date(runAt).toISOString() }),
  }
}

/** The furthest ahead a job may be due, ms: as `delay_ms`'s maximum in openapi.yaml. */
const LONGEST_DELAY_MS = 31_536_000_000

/** A 400 for one field of a submission; `pointer` locates the submission (`/jobs/3`). */
function invalid(pointer: string, field: string, detail: string): ProblemError {
  const error = { in: 'body' as const, pointer: `${pointer}/${field}`, detail }
  return new ProblemError(
    'VALIDATION_FAILED',
    `body${error.pointer.replaceAll('/', '.')} ${detail}`,
    {
      extensions: { errors: [error] },
    },
  )
}

const expiresBeforeDue = (pointer: string) =>
  invalid(pointer, 'ttl_ms', 'ends before the job is due (delay_ms or run_at): it could never run')

/**
 * What the schema cannot say about a submission's timing: `run_at` is a time JavaScript can read
 * (Ajv's `date-time` takes a leap second and an offset without minutes, `Date.parse` neither) at
 * most a year ahead,
 * `ttl_ms` does not end before `delay_ms` (it could never run; against a `run_at`, the enqueue
 * script judges that on Redis's clock), and an exponential back-off's cap is not below its
 * first delay. `pointer` locates the submission in the body (a batch item's `/jobs/3`).
 */
export function timingProblem(body: EnqueueBody, pointer = ''): ProblemError | null {
  const at = body.run_at === undefined ? null : Date.parse(body.run_at)
  if (Number.isNaN(at)) {
    return invalid(
      pointer,
      'run_at',
      'must be a time JavaScript can read, as 2026-11-22T10:05:00Z or 2026-11-22T11:05:00+01:00 (an offset with its minutes, no leap second)',
    )
  }
  if (at !== null && at - Date.now() > LONGEST_DELAY_MS) {
    return invalid(pointer, 'run_at', 'must be at most a year ahead')
  }
  if (at === null && body.ttl_ms !== undefined && body.ttl_ms <= (body.delay_ms ?? 0)) {
    return expiresBeforeDue(pointer)
  }
  const { type, delay_ms: delay, max_delay_ms: cap } = body.backoff
  if (type === 'exponential' && cap < delay) {
    return invalid(
      pointer,
      'backoff/max_delay_ms',
      `(${cap}; 3600000 unless given) is below backoff.delay_ms (${delay}): it would cut every retry's delay short; raise it or lower delay_ms`,
    )
  }
  return null
}

/** The submission had no key where this gateway requires one; `pointer` locates a batch item. */
export function keyRequiredProblem(pointer: string | null = null): ProblemError {
  return new ProblemError(
    'IDEMPOTENCY_KEY_REQUIRED',
    pointer === null
      ? 'This gateway requires an Idempotency-Key (or X-Request-ID) header on every job submission.'
      : `This gateway requires a key on every job submission: give body${pointer.replaceAll('/', '.')} an idempotency_key (a batch request's headers key nothing).`,
  )
}

/** The `AcceptedJob` schema: what a `202` says under `Prefer: return=minimal`. */
export interface AcceptedJob {
  id: string
  state: JobState
}

export type Submitted =
  | {
      accepted: true
      replayed: boolean
      acceptedJob: AcceptedJob
      /** The whole job, unless the producer asked for a minimal answer. */
      job: JobView | null
      location: string
    }
  | { accepted: false; problem: ProblemError }

/**
 * What the producer is told. `payload` is the submitted payload, already parsed: a created
 * job's view then needs no second parse of what was just serialised.
 */
export function submitted(
  job: NewJob,
  result: EnqueueResult,
  payload: Record<string, unknown>,
  minimal: boolean,
  pointer = '',
): Submitted {
  switch (result.outcome) {
    case 'created':
    case 'replayed':
      return {
        accepted: true,
        replayed: result.outcome === 'replayed',
        acceptedJob: { id: result.job.id, state: result.job.state },
        job: minimal ? null : jobView(result.job, result.outcome === 'created' ? { payload } : {}),
        location: jobLocation(job.queue, result.job.id),
      }
    case 'conflict':
      return {
        accepted: false,
        problem: new ProblemError(
          'IDEMPOTENCY_KEY_REUSED',
          `The idempotency key "${job.idempotency?.key}" was first used for a different request (job ${result.jobId}). Use a new key for a new job.`,
        ),
      }
    case 'queue_full':
      return {
        accepted: false,
        problem: new ProblemError(
          'QUEUE_FULL',
          `Queue ${job.queue} holds ${result.depth} waiting jobs, its maximum. Retry once workers catch up.`,
          { headers: { 'retry-after': '1' } },
        ),
      }
    case 'expires_before_due':
      return { accepted: false, problem: expiresBeforeDue(pointer) }
    case 'refused':
      return { accepted: false, problem: result.problem }
    case 'too_many_queues':
      return {
        accepted: false,
        problem: new ProblemError(
          'TOO_MANY_QUEUES',
          `Queue ${job.queue} would be new, but the gateway holds its maximum of queues (MAX_QUEUES). Use an existing queue, delete one no longer used (DELETE /v1/queues/{queue}), or raise MAX_QUEUES.`,
        ),
      }
  }
}
