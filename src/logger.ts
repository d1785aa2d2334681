import {
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
} from 'fastify'
import { destination } from 'pino'
import type { LogLevel } from './config.js'

function prettyAvailable(): boolean {
  try {
    import.meta.resolve('pino-pretty')
    return true
  } catch {
    return false
  }
}

/**
 * pino JSON lines; pretty-printed only when stdout is a terminal and pino-pretty is installed.
 * Each line is one synchronous write: pino's default hands every line to a libuv thread, which
 * cost about 60 µs of CPU per request at 1,000 requests/s (bench/NOTES.md). A full pipe now
 * slows the gateway instead of growing its memory, and a crash loses no line already logged.
 */
export function loggerOptions(level: LogLevel): NonNullable<FastifyServerOptions['logger']> {
  const base = {
    level,
    base: { service: 'jobgate' },
    // An ioredis error carries the command it failed: a login's password, a job's payload.
    redact: ['err.command.args', 'err.previousErrors[*].command.args'],
  }
  if (process.stdout.isTTY && prettyAvailable()) {
    return {
      ...base,
      transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } },
    }
  }
  return { ...base, stream: destination({ dest: 1, sync: true }) }
}

/** Routes polled by probes and scrapers: logged at debug, so they do not drown the access log. */
const QUIET_ROUTES = new Set(['/healthz', '/readyz', '/metrics'])

/** What the access log says of an answer. */
function accessLine(request: FastifyRequest, reply: FastifyReply) {
  return {
    method: request.method,
    url: request.url,
    status: reply.statusCode,
    ms: Math.round(reply.elapsedTime * 100) / 100,
    ip: request.ip,
    client: request.identity?.name ?? null,
  }
}

/** The status logged and counted for a request whose client left before any answer (nginx's). */
export const CLIENT_CLOSED_REQUEST = 499

/**
 * The access line of a request whose client closed the connection before its answer was
 * complete: `status` is 499 when no answer had started, the answer's own when one had (a
 * stream's watcher leaving).
 */
export function logClientClosed(request: FastifyRequest, reply: FastifyReply, status: number) {
  logAccess(request, reply, status, 'client closed the connection before the answer was complete')
}

/** An access line: at debug for the routes probes and scrapers poll, else at info. */
function logAccess(request: FastifyRequest, reply: FastifyReply, status: number, message: string) {
  const line = { ...accessLine(request, reply), status }
  if (QUIET_ROUTES.has(request.routeOptions.url ?? '')) reply.log.debug(line, message)
  else reply.log.info(line, message)
}

/** One access-log line per request, every line labelled with `request_id`. */
export class AccessLog extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'request_id' })
  }

  override incomingRequest(request: FastifyRequest): void {
    request.log.debug({ method: request.method, url: request.url }, 'request received')
  }

  override requestCompleted(
    error: Error | null,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (error) reply.log.error({ ...accessLine(request, reply), err: error }, 'request failed')
    else logAccess(request, reply, reply.statusCode, 'request completed')
  }
}
