/**
 * Every error the gateway can answer with, each under one stable code.
 * Responses are RFC 9457 problem details (`application/problem+json`).
 */

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8'

const catalogue = {
  VALIDATION_FAILED: { status: 400, title: 'The request is not valid' },
  INVALID_JSON: { status: 400, title: 'The request body is not valid JSON' },
  IDEMPOTENCY_KEY_INVALID: { status: 400, title: 'The idempotency key is not valid' },
  IDEMPOTENCY_KEY_REQUIRED: { status: 400, title: 'An idempotency key is required' },
  UNAUTHORIZED: { status: 401, title: 'An API key is required' },
  INVALID_API_KEY: { status: 401, title: 'The API key is not valid' },
  FORBIDDEN: { status: 403, title: 'The API key lacks the scope for this' },
  ROUTE_NOT_FOUND: { status: 404, title: 'No such route' },
  JOB_NOT_FOUND: { status: 404, title: 'No such job' },
  QUEUE_NOT_FOUND: { status: 404, title: 'No such queue' },
  METHOD_NOT_ALLOWED: { status: 405, title: 'The route does not take this method' },
  LEASE_LOST: { status: 409, title: 'The lease on this job is no longer held' },
  LEASE_TOKEN_IN_USE: { status: 409, title: "The lease token names another worker's lease" },
  JOB_NOT_CANCELABLE: { status: 409, title: 'The job can no longer be canceled' },
  JOB_NOT_DEAD: { status: 409, title: 'The job is not dead' },
  QUEUE_NOT_EMPTY: { status: 409, title: 'The queue still holds jobs' },
  TOO_MANY_QUEUES: { status: 409, title: 'The gateway holds its maximum of queues' },
  REQUEST_TIMEOUT: { status: 408, title: 'The request did not arrive in time' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'The request body is too large' },
  RESULT_TOO_LARGE: { status: 413, title: "The job's result is too large" },
  PROGRESS_TOO_LARGE: { status: 413, title: "The job's progress is too large" },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'The request body must be JSON' },
  EXPECTATION_FAILED: { status: 417, title: 'The expectation cannot be met' },
  IDEMPOTENCY_KEY_REUSED: {
    status: 422,
    title: 'The idempotency key was already used for a different request',
  },
  RATE_LIMITED: { status: 429, title: 'Too many requests' },
  TOO_MANY_CLIENT_EVENT_STREAMS: {
    status: 429,
    title: 'The client holds its maximum of event streams on this gateway',
  },
  HEADERS_TOO_LARGE: { status: 431, title: 'The request headers are too large' },
  INTERNAL_ERROR: { status: 500, title: 'Internal error' },
  NOT_READY: { status: 503, title: 'The gateway is not ready' },
  QUEUE_FULL: { status: 503, title: 'The queue is full' },
  SHUTTING_DOWN: { status: 503, title: 'The gateway is shutting down' },
  TOO_MANY_EVENT_STREAMS: { status: 503, title: 'The gateway serves its maximum of event streams' },
  REDIS_UNAVAILABLE: { status: 503, title: 'The job store is unavailable' },
  NOT_REPLICATED: { status: 503, title: 'The change was not confirmed by enough Redis replicas' },
} as const satisfies Record<string, { status: number; title: string }>

export type ProblemCode = keyof typeof catalogue

export interface FieldError {
  /** JSON pointer into the request part named by `in`. */
  pointer: string
  in: 'body' | 'params' | 'querystring' | 'headers'
  detail: string
}

export interface ProblemDocument {
  type: string
  title: string
  status: number
  detail: string
  code: ProblemCode
  instance?: string
  request_id?: string
  errors?: FieldError[]
  [extension: string]: unknown
}

export function problemType(code: ProblemCode): string {
  return `tag:jobgate,2026:problems:${code.toLowerCase().replaceAll('_', '-')}`
}

export function problemStatus(code: ProblemCode): number {
  return catalogue[code].status
}

export function problemCodes(): ProblemCode[] {
  return Object.keys(catalogue) as ProblemCode[]
}

export interface ProblemOptions {
  /** Extra members of the problem document. */
  extensions?: Record<string, unknown>
  /** Response headers that belong to this problem (Retry-After, WWW-Authenticate, ...). */
  headers?: Record<string, string>
  cause?: unknown
}

/** An error that is answered as a problem document. Throw it from anywhere in a request. */
export class ProblemError extends Error {
  readonly status: number
  readonly extensions: Record<string, unknown>
  readonly headers: Record<string, string>

  constructor(
    readonly code: ProblemCode,
    readonly detail: string,
    options: ProblemOptions = {},
  ) {
    super(detail, { cause: options.cause })
    this.name = 'ProblemError'
    this.status = catalogue[code].status
    this.extensions = options.extensions ?? {}
    this.headers = options.headers ?? {}
  }

  toDocument(instance?: string, requestId?: string): ProblemDocument {
    return {
      type: problemType(this.code),
      title: catalogue[this.code].title,
      status: this.status,
      detail: this.detail,
      code: this.code,
      ...(instance === undefined ? {} : { instance }),
      ...(requestId === undefined ? {} : { request_id: requestId }),
      ...this.extensions,
    }
  }
}

/** A request header with a malformed value, named in the problem's `errors` like a field. */
export function invalidHeader(
  code: ProblemCode,
  header: string,
  detail: string,
  fieldDetail: string,
): ProblemError {
  return new ProblemError(code, detail, {
    extensions: { errors: [{ in: 'headers', pointer: `/${header}`, detail: fieldDetail }] },
  })
}

/** A job id the queue does not hold (never, or no longer: records expire after their retention). */
export function jobNotFound(queue: string, id: string): ProblemError {
  return new ProblemError('JOB_NOT_FOUND', `Queue ${queue} has no job ${id}.`)
}

/** A queue name that never had a job, or was deleted. */
export function queueNotFound(queue: string): ProblemError {
  return new ProblemError(
    'QUEUE_NOT_FOUND',
    `There is no queue ${queue}: it never had a job, or it was deleted.`,
  )
}

/** The answer to a request that arrives, or would start something, during a shutdown. */
export function shuttingDown(): ProblemError {
  return new ProblemError(
    'SHUTTING_DOWN',
    'The gateway is shutting down; retry on another replica or shortly.',
    { headers: { 'retry-after': '1' } },
  )
}
