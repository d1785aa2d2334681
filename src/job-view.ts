import type { ReservedJob, Settled } from './queue/lease-store.js'
import {
  type HistoryEntry,
  isFinal,
  type JobPage,
  type JobRecord,
  type JobState,
  type PageCursor,
} from './queue/records.js'

/** The HTTP representation of a job (the `Job` schema of openapi.yaml). */
export interface JobView {
  id: string
  queue: string
  type: string
  state: JobState
  payload: unknown
  priority: number
  attempts: number
  max_attempts: number
  timeout_ms: number | null
  backoff: { type: string; delay_ms: number; max_delay_ms: number; jitter: boolean }
  created_at: string
  run_at: string
  updated_at: string
  expires_at: string | null
  started_at: string | null
  finished_at: string | null
  lease_deadline: string | null
  worker: string | null
  progress: unknown
  result: unknown
  last_error: { message: string; class: string; at: string } | null
  request_id: string | null
  idempotency_key: string | null
  history: { at: string; state: JobState; [detail: string]: unknown }[]
}

export function iso(ms: number): string {
  return new Date(ms).toISOString()
}

function isoOrNull(ms: number | null): string | null {
  return ms === null ? null : iso(ms)
}

/**
 * What a worker reported (a result, progress). The scripts take JSON text only, but a record
 * written before they checked it as strictly (Redis's decoder reads `-.5` and `01`) may hold
 * text JSON.parse refuses: shown as that text, a string, so that one record does not make its
 * job and every list holding it unreadable.
 */
function reported(text: string | null): unknown {
  if (text === null) return null
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

function historyView({ at, ...rest }: HistoryEntry): JobView['history'][number] {
  return { ...rest, at: iso(at) }
}

function lastErrorView(text: string | null): JobView['last_error'] {
  if (text === null) return null
  const error = JSON.parse(text) as { message: string; class: string; at: number }
  return { message: error.message, class: error.class, at: iso(error.at) }
}

/**
 * `known.payload`: the payload already parsed, when the caller has it (saves parsing it again).
 * An options object, not a positional argument, so that `jobs.map(jobView)` is a type error
 * rather than each job shown with its index as payload.
 */
export function jobView(job: JobRecord, known: { payload?: unknown } = {}): JobView {
  return {
    id: job.id,
    queue: job.queue,
    type: job.type,
    state: job.state,
    payload: known.payload ?? JSON.parse(job.payload),
    priority: job.priority,
    attempts: job.attempts,
    max_attempts: job.maxAttempts,
    timeout_ms: job.timeoutMs,
    backoff: {
      type: job.backoff.type,
      delay_ms: job.backoff.delayMs,
      max_delay_ms: job.backoff.maxDelayMs,
      jitter: job.backoff.jitter,
    },
    created_at: iso(job.createdAt),
    run_at: iso(job.runAt),
    updated_at: iso(job.updatedAt),
    expires_at: isoOrNull(job.expiresAt),
    started_at: isoOrNull(job.startedAt),
    finished_at: isoOrNull(job.finishedAt),
    lease_deadline: job.state === 'active' ? isoOrNull(job.leaseDeadline) : null,
    worker: job.worker,
    progress: reported(job.progress),
    result: reported(job.result),
    last_error: lastErrorView(job.lastError),
    request_id: job.requestId,
    idempotency_key: job.idempotencyKey,
    history: job.history.map(historyView),
  }
}

/** The status URL of a job, also its `Location`. */
export function jobLocation(queue: string, id: string): string {
  return `/v1/queues/${queue}/jobs/${id}`
}

/** A job as `jobs:reserve` hands it to a worker (the `Reservation` schema). */
export function reservationView(job: ReservedJob) {
  return {
    job: {
      id: job.id,
      queue: job.queue,
      type: job.type,
      payload: JSON.parse(job.payload),
      attempts: job.attempts,
      max_attempts: job.maxAttempts,
      timeout_ms: job.timeoutMs,
      request_id: job.requestId,
      created_at: iso(job.createdAt),
      priority: job.priority,
    },
    lease: { token: job.leaseToken, deadline: iso(job.leaseDeadline) },
  }
}

/** The state after a worker operation (the `Settlement` schema). */
export function settlementView(
  id: string,
  settled: Settled | { state: 'active'; leaseDeadline: number },
) {
  const finished = isFinal(settled.state)
  return {
    id,
    state: settled.state,
    run_at: 'at' in settled && !finished ? iso(settled.at) : null,
    finished_at: 'at' in settled && finished ? iso(settled.at) : null,
    lease_deadline: 'leaseDeadline' in settled ? iso(settled.leaseDeadline) : null,
  }
}

/**
 * A list route's `after`: `<score>.<job id>`, as `pageView` writes `next` (openapi.yaml's
 * pattern has checked it; ids have no dot).
 */
export function cursorOf(after: string | undefined): PageCursor | null {
  if (after === undefined) return null
  const dot = after.indexOf('.')
  return { score: after.slice(0, dot), id: after.slice(dot + 1) }
}

/** A page of jobs as the list routes answer it; `next` is the cursor `after` takes. */
export function pageView(page: JobPage, limit: number) {
  return {
    total: page.total,
    offset: page.start,
    limit,
    next: page.next === null ? null : `${page.next.score}.${page.next.id}`,
    jobs: page.jobs.map((job) => jobView(job)),
  }
}
