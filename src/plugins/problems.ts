import type { ErrorObject } from 'ajv'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { fieldErrors } from '../contract.js'
import { type FieldError, PROBLEM_CONTENT_TYPE, type ProblemCode, ProblemError } from '../errors.js'
import { UNSUPPORTED_DETAIL } from './json-body.js'

/**
 * Turns every error — ours, Fastify's (404, 413, 415, bad JSON, validation) and unexpected
 * ones — into an RFC 9457 problem document with a stable code.
 */

const FASTIFY_CODES: Record<string, { code: ProblemCode; detail: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    code: 'UNSUPPORTED_MEDIA_TYPE',
    detail: UNSUPPORTED_DETAIL,
  },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'PAYLOAD_TOO_LARGE', detail: '' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    code: 'VALIDATION_FAILED',
    detail: 'Content-Length does not match the body.',
  },
}

/**
 * A schema validation failure as a `400` problem naming each field; `prefix` is the pointer of
 * the validated value within the request part (a batch item's `/jobs/3`).
 */
export function validationProblem(
  ajvErrors: readonly ErrorObject[],
  part: FieldError['in'],
  prefix = '',
): ProblemError {
  const errors = fieldErrors(ajvErrors, part).map((field) => ({
    ...field,
    pointer: prefix + field.pointer,
  }))
  const first = errors[0]
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''
  const detail = !first
    ? `The ${part} is not valid.`
    : first.pointer === ''
      ? `${first.detail}${more}`
      : `${part}${first.pointer.replaceAll('/', '.')} ${first.detail}${more}`
  return new ProblemError('VALIDATION_FAILED', detail, { extensions: { errors } })
}

function toProblem(error: FastifyError, bodyLimit: number): ProblemError {
  if (error instanceof ProblemError) return error
  if (error.validation) {
    const part = (error.validationContext ?? 'body') as FieldError['in']
    return validationProblem(error.validation as ErrorObject[], part)
  }
  const known = error.code ? FASTIFY_CODES[error.code] : undefined
  if (known?.code === 'PAYLOAD_TOO_LARGE') {
    return new ProblemError('PAYLOAD_TOO_LARGE', `The body is larger than ${bodyLimit} bytes.`)
  }
  if (known) return new ProblemError(known.code, known.detail)
  const status = error.statusCode ?? 500
  if (status >= 400 && status < 500) return new ProblemError('VALIDATION_FAILED', error.message)
  return new ProblemError('INTERNAL_ERROR', 'The request failed unexpectedly.', { cause: error })
}

declare module 'fastify' {
  interface FastifyReply {
    /** The problem code this reply carries (metrics count rejected submissions by it). */
    problemCode: ProblemCode | null
  }
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, problem: ProblemError) {
  reply.problemCode = problem.code
  return reply
    .code(problem.status)
    .headers(problem.headers)
    .type(PROBLEM_CONTENT_TYPE)
    .send(problem.toDocument(request.url, request.id))
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const

export default fp(
  async function problems(app: FastifyInstance, options: { bodyLimit: number }) {
    app.decorateReply('problemCode', null)
    app.setErrorHandler((error: FastifyError, request, reply) => {
      const problem = toProblem(error, options.bodyLimit)
      // A 500 is a bug (log it whole); a 503 is an expected state of a dependency.
      if (problem.status === 500)
        request.log.error({ err: error, code: problem.code }, problem.detail)
      else if (problem.status >= 500) request.log.warn({ code: problem.code }, problem.detail)
      else request.log.info({ code: problem.code }, problem.detail)
      return sendProblem(request, reply, problem)
    })

    // A path some route serves with other methods is a 405 naming them (RFC 9110), not a 404.
    app.setNotFoundHandler((request, reply) => {
      const path = request.url.split('?', 1)[0] ?? ''
      const allowed = METHODS.filter((method) => app.findRoute({ method, url: path }) !== null)
      const problem =
        allowed.length === 0
          ? new ProblemError(
              'ROUTE_NOT_FOUND',
              `There is no route ${request.method} ${request.url}.`,
            )
          : new ProblemError(
              'METHOD_NOT_ALLOWED',
              `${path} takes ${allowed.join(', ')}, not ${request.method}.`,
              { headers: { allow: allowed.join(', ') } },
            )
      return sendProblem(request, reply, problem)
    })
  },
  { name: 'jobgate-problems' },
)
