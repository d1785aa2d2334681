import { Readable } from 'node:stream'
import type { ValidateFunction } from 'ajv/dist/2020.js'
import type { FastifyInstance } from 'fastify'
import {
  createAjv,
  dereference,
  HTTP_METHODS,
  type JsonSchema,
  loadOpenApi,
  type OpenApiDocument,
} from '../../src/contract.js'

/**
 * Checks real responses against openapi.yaml: the status is documented for the operation, the
 * content type matches, the body validates against the schema, required headers are present
 * and documented headers match their schemas. Used on every response of the test apps.
 */

interface HeaderSpec {
  required?: boolean
  schema?: JsonSchema
}

interface ResponseSpec {
  headers?: Record<string, HeaderSpec>
  content?: Record<string, { schema?: JsonSchema }>
}

interface OperationSpec {
  operationId: string
  responses: Record<string, ResponseSpec>
}

export interface ObservedResponse {
  method: string
  /** The Fastify route pattern, e.g. `/v1/queues/:queue/jobs`; undefined for the 404 handler. */
  route: string | undefined
  status: number
  headers: Record<string, unknown>
  /** null for a streamed body (an event stream): its events are checked by the test reading it. */
  body: string | null
}

/** The statuses every operation's `default` answer stands for (AnyOperation in openapi.yaml). */
const ANY_OPERATION_STATUSES = new Set([405, 408, 417, 431])

/** `/v1/queues/:queue/jobs::batch` → `/v1/queues/{queue}/jobs:batch` */
export function openApiPath(fastifyPath: string): string {
  return fastifyPath
    .replaceAll('::', '\u0000')
    .replace(/:([A-Za-z0-9_]+)(\([^)]*\))?/g, '{$1}')
    .replaceAll('\u0000', ':')
}

function bodyText(payload: unknown): string | null {
  if (typeof payload === 'string') return payload
  if (payload == null) return ''
  if (payload instanceof Readable) return null
  return String(payload)
}

export class ContractChecker {
  readonly document: OpenApiDocument
  private readonly ajv = createAjv({ coerceTypes: false, useDefaults: false })
  private readonly validators = new Map<JsonSchema, ValidateFunction>()
  readonly violations: string[] = []
  readonly seen = new Set<string>()

  constructor(document: OpenApiDocument = loadOpenApi()) {
    this.document = dereference(document, document)
  }

  operation(method: string, path: string): OperationSpec | undefined {
    const item = this.document.paths[path]
    const key = method.toLowerCase()
    if (!item || !(HTTP_METHODS as readonly string[]).includes(key)) return undefined
    return item[key] as OperationSpec | undefined
  }

  /** Validates a value against a schema of the document; null when it is valid. */
  validate(schema: JsonSchema, value: unknown): string | null {
    let validator = this.validators.get(schema)
    if (!validator) {
      validator = this.ajv.compile(schema)
      this.validators.set(schema, validator)
    }
    return validator(value) ? null : this.ajv.errorsText(validator.errors)
  }

  /** Violations of one response; also recorded in `violations`. */
  check(response: ObservedResponse): string[] {
    const found: string[] = []
    const label = `${response.method} ${response.route ?? '(no route)'} → ${response.status}`
    let spec: ResponseSpec | undefined
    if (response.route === undefined) {
      // Fastify's not-found handler: any path, always a problem document.
      const problem = (this.document.components.schemas as Record<string, JsonSchema>).Problem
      spec = { content: { 'application/problem+json': { schema: problem as JsonSchema } } }
    } else {
      // A HEAD is Fastify's twin of a GET route: the GET's answer without its body.
      const method = response.method === 'HEAD' ? 'GET' : response.method
      const operation = this.operation(method, openApiPath(response.route))
      if (!operation) {
        found.push(`${label}: the route is not in openapi.yaml`)
      } else {
        spec =
          operation.responses[String(response.status)] ??
          (ANY_OPERATION_STATUSES.has(response.status) ? operation.responses.default : undefined)
        if (!spec) found.push(`${label}: status ${response.status} is not documented`)
        else this.seen.add(`${operation.operationId} ${response.status}`)
      }
    }
    if (spec) found.push(...this.checkAgainst(spec, response, label))
    this.violations.push(...found)
    return found
  }

  private checkAgainst(spec: ResponseSpec, response: ObservedResponse, label: string): string[] {
    const found: string[] = []
    for (const [name, header] of Object.entries(spec.headers ?? {})) {
      const value = response.headers[name.toLowerCase()]
      if (value === undefined) {
        if (header.required) found.push(`${label}: required header ${name} is missing`)
        continue
      }
      const error = header.schema ? this.validate(header.schema, String(value)) : null
      if (error) found.push(`${label}: header ${name}: ${error}`)
    }
    const contentType =
      String(response.headers['content-type'] ?? '')
        .split(';')[0]
        ?.trim() ?? ''
    const content = spec.content ?? {}
    if (Object.keys(content).length === 0) {
      if (response.body !== '' && response.body !== null) {
        found.push(`${label}: documented without a body but has one`)
      }
      return found
    }
    const media = content[contentType]
    if (!media) {
      found.push(
        `${label}: content type "${contentType}" is not one of ${Object.keys(content).join(', ')}`,
      )
      return found
    }
    if (response.body === null) return found
    let body: unknown = response.body
    if (/[/+]json$/.test(contentType)) {
      try {
        body = JSON.parse(response.body)
      } catch {
        found.push(`${label}: body is not JSON`)
        return found
      }
    }
    const error = media.schema ? this.validate(media.schema, body) : null
    if (error) found.push(`${label}: body: ${error}`)
    return found
  }

  /** Checks every response the app sends. */
  attach(app: FastifyInstance): void {
    app.addHook('onSend', async (request, reply, payload) => {
      try {
        this.check({
          method: request.method,
          route: request.is404 ? undefined : request.routeOptions.url,
          status: reply.statusCode,
          headers: reply.getHeaders(),
          body: request.method === 'HEAD' ? null : bodyText(payload),
        })
      } catch (error) {
        this.violations.push(`${request.method} ${request.url}: cannot check: ${String(error)}`)
      }
      return payload
    })
  }
}
