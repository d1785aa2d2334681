/**
 * The job record as stored in its Redis hash, decoded into a typed value.
 * Field names are the protocol's (PROTOCOL.md); this is the only place that knows them.
 */

export const JOB_STATES = [
  'queued',
  'scheduled',
  'active',
  'succeeded',
  'dead',
  'canceled',
  'expired',
] as const
export type JobState = (typeof JOB_STATES)[number]

/** States a job leaves only by an operator's redrive (a dead job): nothing else happens to it. */
const FINAL_STATES: ReadonlySet<string> = new Set<JobState>([
  'succeeded',
  'dead',
  'canceled',
  'expired',
])

export function isFinal(state: string): boolean {
  return FINAL_STATES.has(state)
}

export type BackoffType = 'exponential' | 'fixed'

export interface Backoff {
  type: BackoffType
  delayMs: number
  maxDelayMs: number
  jitter: boolean
}

export interface HistoryEntry {
  at: number
  state: JobState
  [detail: string]: unknown
}

export interface JobRecord {
  id: string
  queue: string
  type: string
  state: JobState
  /** The payload as stored: JSON text of an object. */
  payload: string
  priority: number
  attempts: number
  maxAttempts: number
  timeoutMs: number | null
  backoff: Backoff
  createdAt: number
  runAt: number
  updatedAt: number
  expiresAt: number | null
  startedAt: number | null
  finishedAt: number | null
  leaseDeadline: number | null
  worker: string | null
  /** JSON text, as reported by the worker. */
  progress: string | null
  result: string | null
  lastError: string | null
  requestId: string | null
  idempotencyKey: string | null
  history: HistoryEntry[]
}

/** What a producer asks for; the script adds state, attempts, timestamps and history. */
export interface NewJob {
  id: string
  queue: string
  type: string
  payload: string
  priority: number
  maxAttempts: number
  timeoutMs: number | null
  backoff: Backoff
  delayMs: number
  runAt: number | null
  ttlMs: number | null
  requestId: string
  client: string
  idempotency: { key: string; fingerprint: string } | null
}

/** The stored fields of a new job, as name/value pairs for the enqueue script. */
export function newJobFields(job: NewJob): string[] {
  const fields = [
    'queue',
    job.queue,
    'type',
    job.type,
    'payload',
    job.payload,
    'priority',
    String(job.priority),
    'max_attempts',
    String(job.maxAttempts),
    'backoff_type',
    job.backoff.type,
    'backoff_delay_ms',
    String(job.backoff.delayMs),
    'backoff_max_delay_ms',
    String(job.backoff.maxDelayMs),
    'backoff_jitter',
    job.backoff.jitter ? '1' : '0',
    'request_id',
    job.requestId,
    'client',
    job.client,
  ]
  if (job.timeoutMs !== null) fields.push('timeout_ms', String(job.timeoutMs))
  if (job.idempotency !== null) fields.push('idempotency_key', job.idempotency.key)
  return fields
}

function isJobState(value: string | undefined): value is JobState {
  return (JOB_STATES as readonly (string | undefined)[]).includes(value)
}

function optionalNumber(value: string | undefined): number | null {
  return value === undefined || value === '' ? null : Number(value)
}

/**
 * A place in a list or set of jobs: an entry's score (as Redis gave it: a due time, lease
 * deadline or time of death, ms; a queued job's priority) and its job id.
 */
export interface PageCursor {
  score: string
  id: string
}

/** A page of a list or set of jobs: how many it holds, where it starts, the next, the records. */
export interface JobPage {
  total: number
  /** Where the page starts in the list or set as it stood (0 = the first entry). */
  start: number
  /** The page's last entry, where the next page starts; null when nothing follows. */
  next: PageCursor | null
  jobs: JobRecord[]
}

/** The states a job waits in, each with its list or set to page through. */
export type WaitingState = 'queued' | 'scheduled' | 'active'

/** The waiting states a job can be canceled in (it has not started). */
export type CancelableState = Exclude<WaitingState, 'active'>

/**
 * `{'OK', total, start, next_score, next_id, {field, value, …}, …}`, the reply of the scripts
 * that page through jobs.
 */
export function decodePage(reply: unknown[]): JobPage {
  const [, total, start, nextScore, nextId, ...records] = reply
  const jobs = records
    .map((record) => (Array.isArray(record) ? decodeJob(record.map(String)) : null))
    .filter((job) => job !== null)
  const next = nextId ? { score: String(nextScore), id: String(nextId) } : null
  return { total: Number(total), start: Number(start), next, jobs }
}

/** Decodes an HGETALL reply (flat name/value list); null when the record is empty. */
export function decodeJob(flat: readonly string[]): JobRecord | null {
  if (flat.length === 0) return null
  const fields = new Map<string, string>()
  const history: [number, HistoryEntry][] = []
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = flat[i] as string
    const value = flat[i + 1] as string
    if (name.startsWith('h:')) history.push([Number(name.slice(2)), JSON.parse(value)])
    else fields.set(name, value)
  }
  history.sort((a, b) => a[0] - b[0])
  const state = fields.get('state')
  const id = fields.get('id')
  if (id === undefined || !isJobState(state)) {
    throw new Error(`jobgate: malformed job record ${id ?? '(no id)'}`)
  }
  const text = (name: string) => fields.get(name) ?? null
  const number = (name: string) => optionalNumber(fields.get(name))
  return {
    id,
    queue: fields.get('queue') ?? '',
    type: fields.get('type') ?? '',
    state,
    payload: fields.get('payload') ?? '{}',
    priority: number('priority') ?? 0,
    attempts: number('attempts') ?? 0,
    maxAttempts: number('max_attempts') ?? 1,
    timeoutMs: number('timeout_ms'),
    backoff: {
      type: fields.get('backoff_type') === 'fixed' ? 'fixed' : 'exponential',
      delayMs: number('backoff_delay_ms') ?? 0,
      maxDelayMs: number('backoff_max_delay_ms') ?? 0,
      jitter: fields.get('backoff_jitter') === '1',
    },
    createdAt: number('created_at') ?? 0,
    runAt: number('run_at') ?? 0,
    updatedAt: number('updated_at') ?? 0,
    expiresAt: number('expires_at'),
    startedAt: number('started_at'),
    finishedAt: number('finished_at'),
    leaseDeadline: number('lease_deadline'),
    worker: text('worker'),
    progress: text('progress'),
    result: text('result'),
    lastError: text('last_error'),
    requestId: text('request_id'),
    idempotencyKey: text('idempotency_key'),
    history: history.map(([, entry]) => entry),
  }
}
