import { randomUUID } from 'node:crypto'
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import { PROBLEM_CONTENT_TYPE, type ProblemCode, ProblemError } from './errors.js'
import { requestIdOf } from './request-id.js'

/**
 * Requests Node's HTTP parser refuses before Fastify sees them (headers too large, a broken
 * Content-Length, a request that never finished) still get a problem document, then the
 * connection closes: after a framing error nothing more on it can be trusted.
 */

const BY_NODE_CODE: Record<string, { code: ProblemCode; detail: string }> = {
  HPE_HEADER_OVERFLOW: {
    code: 'HEADERS_TOO_LARGE',
    detail: 'The request headers are larger than the gateway accepts.',
  },
  ERR_HTTP_REQUEST_TIMEOUT: {
    code: 'REQUEST_TIMEOUT',
    detail: 'The request did not arrive whole in time.',
  },
}

const FALLBACK = {
  code: 'VALIDATION_FAILED',
  detail: 'The request is not valid HTTP/1.1.',
} as const

export function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  const { code, detail } = (error.code ? BY_NODE_CODE[error.code] : undefined) ?? FALLBACK
  answerOnSocket(socket, new ProblemError(code, detail))
}

/** A CONNECT request (a proxy tunnel) reaches no route: Node would close the socket silently. */
export function answerConnect(_request: unknown, socket: Socket): void {
  answerOnSocket(
    socket,
    new ProblemError('VALIDATION_FAILED', 'CONNECT is not served: this is no proxy.'),
  )
}

/**
 * An `Expect` other than 100-continue (which Node answers itself): Node's own 417 is empty; this
 * one is a problem document. The request's body, if it comes, is read and dropped by Node.
 */
export function answerExpectation(request: IncomingMessage, response: ServerResponse): void {
  const problem = new ProblemError(
    'EXPECTATION_FAILED',
    'The gateway meets no Expect but 100-continue: send the request without it.',
  )
  const { headers, body } = problemAnswer(problem, requestIdOf(request))
  response.writeHead(problem.status, headers)
  response.end(body)
}

/** A problem document and the headers it goes with, for the answers written outside Fastify. */
function problemAnswer(problem: ProblemError, requestId: string) {
  const body = JSON.stringify(problem.toDocument(undefined, requestId))
  const headers = {
    'Content-Type': PROBLEM_CONTENT_TYPE,
    'Content-Length': String(Buffer.byteLength(body)),
    'X-Request-ID': requestId,
  }
  return { headers, body }
}

function answerOnSocket(socket: Socket, problem: ProblemError): void {
  // A response under way on the socket (an event stream, a long poll, before a pipelined bad
  // request): an answer written now would land inside it. Node's own handler drops it too.
  const current = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage
  if (!socket.writable || current?.headersSent === true) {
    socket.destroy()
    return
  }
  const { headers, body } = problemAnswer(problem, randomUUID())
  socket.end(
    [
      `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}`,
      ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
      'Connection: close',
      '',
      body,
    ].join('\r\n'),
  )
}
