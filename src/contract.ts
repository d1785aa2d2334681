import { readFileSync } from 'node:fs'
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js'
import formatsPlugin from 'ajv-formats'
import type { FastifySchema, FastifySchemaCompiler } from 'fastify'
import { parse } from 'yaml'
import { SCOPES, type Scope } from './auth.js'
import type { FieldError } from './errors.js'
import { OPENAPI_PATH } from './paths.js'

/**
 * `openapi.yaml` is the single source of the HTTP contract: routes validate their params,
 * query and body against the schemas it declares, so the document cannot drift from the code.
 */

export type JsonSchema = { [keyword: string]: unknown }

interface Parameter {
  name: string
  in: 'path' | 'query' | 'header' | 'cookie'
  required?: boolean
  schema: JsonSchema
}

interface Operation {
  operationId: string
  security?: Record<string, string[]>[]
  parameters?: Parameter[]
  requestBody?: { content: Record<string, { schema: JsonSchema }> }
  responses: Record<string, unknown>
  /** false: the operation is outside the rate limits of its scope. */
  'x-rate-limited'?: boolean
}

export interface OpenApiDocument {
  paths: Record<string, Record<string, unknown>>
  components: Record<string, Record<string, unknown>>
  [member: string]: unknown
}

export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const

/** Replaces every local `$ref` with the schema it points to (the document has no cycles). */
export function dereference<T>(node: T, root: unknown, trail: string[] = []): T {
  if (Array.isArray(node)) return node.map((item) => dereference(item, root, trail)) as T
  if (node === null || typeof node !== 'object') return node
  const object = node as Record<string, unknown>
  const ref = object.$ref
  const out: Record<string, unknown> = {}
  if (typeof ref === 'string') {
    if (trail.includes(ref)) throw new Error(`openapi.yaml: circular $ref ${ref}`)
    Object.assign(out, dereference(resolvePointer(root, ref), root, [...trail, ref]))
  }
  for (const [key, value] of Object.entries(object)) {
    if (key !== '$ref') out[key] = dereference(value, root, trail)
  }
  return out as T
}

function resolvePointer(root: unknown, ref: string): unknown {
  if (!ref.startsWith('#/')) throw new Error(`openapi.yaml: only local $ref is supported (${ref})`)
  let target = root
  for (const segment of ref.slice(2).split('/')) {
    const key = segment.replaceAll('~1', '/').replaceAll('~0', '~')
    target = (target as Record<string, unknown> | undefined)?.[key]
    if (target === undefined) throw new Error(`openapi.yaml: unresolved $ref ${ref}`)
  }
  return target
}

export function loadOpenApi(path = OPENAPI_PATH): OpenApiDocument {
  return parse(readFileSync(path, 'utf8')) as OpenApiDocument
}

export class Contract {
  private readonly operations = new Map<string, Operation>()
  private readonly paths = new Map<string, string>()

  constructor(readonly document: OpenApiDocument = loadOpenApi()) {
    for (const [path, item] of Object.entries(document.paths)) {
      for (const method of HTTP_METHODS) {
        const operation = item[method] as Operation | undefined
        if (!operation) continue
        this.operations.set(operation.operationId, dereference(operation, document))
        this.paths.set(operation.operationId, path)
      }
    }
  }

  /**
   * Route options from one operation: its schema, the API-key scope it requires, whether it is
   * rate limited and answers `If-None-Match`, and its path in the document (what metrics name
   * the route by).
   */
  route(operationId: string): {
    schema: FastifySchema
    config: { scope: Scope | null; rateLimited: boolean; conditional: boolean; path: string }
  } {
    const operation = this.operation(operationId)
    return {
      schema: this.routeSchema(operationId),
      config: {
        scope: this.scope(operationId),
        rateLimited: operation['x-rate-limited'] !== false,
        conditional: '304' in operation.responses,
        path: this.paths.get(operationId) ?? '',
      },
    }
  }

  /** The scope the operation's security requirement names; null = public. */
  scope(operationId: string): Scope | null {
    const requirements = this.operation(operationId).security ?? []
    const scopes = new Set(requirements.flatMap((requirement) => Object.values(requirement).flat()))
    if (scopes.size > 1) throw new Error(`openapi.yaml: ${operationId} names several scopes`)
    const [scope] = scopes
    if (scope === undefined) return null
    if (!(SCOPES as readonly string[]).includes(scope)) {
      throw new Error(`openapi.yaml: ${operationId} names an unknown scope ${scope}`)
    }
    return scope as Scope
  }

  private operation(operationId: string): Operation {
    const operation = this.operations.get(operationId)
    if (!operation) throw new Error(`openapi.yaml has no operation ${operationId}`)
    return operation
  }

  /** The Fastify route schema (params, querystring, body) of one operation. */
  routeSchema(operationId: string): FastifySchema {
    const operation = this.operation(operationId)
    const schema: FastifySchema = {}
    const params = this.parameterSchema(operation, 'path')
    const query = this.parameterSchema(operation, 'query')
    if (params) schema.params = params
    if (query) schema.querystring = query
    const body = operation.requestBody?.content['application/json']?.schema
    if (body) schema.body = withoutSeparateItems(body)
    return schema
  }

  /**
   * The validator of the items a request body marks `x-validate-items-separately` (a batch):
   * the route checks only that they form an array, and the handler validates each on its own,
   * so that one bad item fails alone. Defaults are filled in as for a body.
   */
  itemValidator(operationId: string): ValidateFunction {
    const body = this.operation(operationId).requestBody?.content['application/json']?.schema
    const items = Object.values((body?.properties ?? {}) as Record<string, JsonSchema>).find(
      (property) => property[SEPARATE_ITEMS] === true,
    )?.items
    if (items === undefined) {
      throw new Error(`openapi.yaml: ${operationId} has no items validated separately`)
    }
    return createAjv({ coerceTypes: false, useDefaults: true }).compile(items as JsonSchema)
  }

  private parameterSchema(operation: Operation, location: 'path' | 'query'): JsonSchema | null {
    const parameters = (operation.parameters ?? []).filter((p) => p.in === location)
    // A route that declares no query parameter refuses any too: `POST …/jobs?delay_ms=5000`
    // must not create a job without its delay.
    if (parameters.length === 0 && location === 'path') return null
    return {
      type: 'object',
      additionalProperties: location === 'path',
      required: parameters.filter((p) => p.required).map((p) => p.name),
      properties: Object.fromEntries(parameters.map((p) => [p.name, p.schema])),
    }
  }
}

const SEPARATE_ITEMS = 'x-validate-items-separately'

function withoutSeparateItems(body: JsonSchema): JsonSchema {
  const properties = body.properties as Record<string, JsonSchema> | undefined
  if (!properties) return body
  const relaxed = Object.entries(properties).map(([name, property]) => [
    name,
    property[SEPARATE_ITEMS] === true ? { ...property, items: true } : property,
  ])
  return { ...body, properties: Object.fromEntries(relaxed) }
}

/** An Ajv for JSON Schema 2020-12 (the dialect of OpenAPI 3.1), with formats. */
export function createAjv(options: { coerceTypes: boolean; useDefaults: boolean }): Ajv2020 {
  const ajv = new Ajv2020({
    allErrors: true,
    verbose: true,
    strict: true,
    // `not: { required: [...] }` names properties declared by the parent schema, not by `not`.
    strictRequired: false,
    removeAdditional: false,
    coerceTypes: options.coerceTypes,
    useDefaults: options.useDefaults,
  })
  formatsPlugin.default(ajv)
  // A readable message for a subschema whose own failure says little (`not`, `oneOf`).
  ajv.addKeyword({ keyword: 'x-error-message', schemaType: 'string' })
  ajv.addKeyword({ keyword: SEPARATE_ITEMS, schemaType: 'boolean' })
  return ajv
}

/**
 * Bodies are validated strictly (no type coercion, defaults filled in); path and query
 * parameters arrive as strings and are coerced to their declared types.
 */
export function validatorCompiler(): FastifySchemaCompiler<JsonSchema> {
  const strict = createAjv({ coerceTypes: false, useDefaults: true })
  const coercing = createAjv({ coerceTypes: true, useDefaults: true })
  return ({ schema, httpPart }) => {
    if (httpPart === 'body') return strict.compile(schema) as ValidateFunction
    return decimalIntegersOnly(schema, coercing.compile(schema) as ValidateFunction)
  }
}

const DECIMAL = /^-?[0-9]+$/

/**
 * Ajv coerces any string JavaScript reads as a number (`0x10`, `1e1`, ` 10`) to an integer;
 * a parameter declared `integer` takes decimal digits only, so that it means one thing.
 */
function decimalIntegersOnly(schema: JsonSchema, validate: ValidateFunction): ValidateFunction {
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>
  const integers = Object.keys(properties).filter((name) => properties[name]?.type === 'integer')
  if (integers.length === 0) return validate
  const checked = ((data: Record<string, unknown>) => {
    const bad = integers.filter(
      (name) => typeof data[name] === 'string' && !DECIMAL.test(data[name]),
    )
    if (bad.length === 0) {
      const valid = validate(data)
      checked.errors = validate.errors
      return valid
    }
    checked.errors = bad.map((name) => ({
      instancePath: `/${name}`,
      schemaPath: `#/properties/${name}/type`,
      keyword: 'type',
      params: { type: 'integer' },
      message: 'must be integer',
    }))
    return false
  }) as ValidateFunction
  return checked
}

/** Ajv errors as RFC 9457 `errors` members. */
export function fieldErrors(errors: readonly ErrorObject[], part: FieldError['in']): FieldError[] {
  const seen = new Set<string>()
  const out: FieldError[] = []
  // A value of the wrong type fails every other rule of its schema too (a `not` on its
  // properties, say): only the type is worth saying there.
  const mistyped = new Set(errors.filter((e) => e.keyword === 'type').map((e) => e.instancePath))
  for (const error of errors) {
    // `allOf`/`oneOf`/`if` wrappers repeat what their subschema already reported.
    if (error.keyword === 'allOf' || error.keyword === 'if') continue
    if (error.keyword !== 'type' && mistyped.has(error.instancePath)) continue
    const field = fieldError(error, part)
    const key = `${field.pointer} ${field.detail}`
    if (!seen.has(key)) {
      seen.add(key)
      out.push(field)
    }
  }
  return out
}

function fieldError(error: ErrorObject, part: FieldError['in']): FieldError {
  const custom = (error.parentSchema as JsonSchema | undefined)?.['x-error-message']
  const params = error.params as Record<string, unknown>
  let pointer = error.instancePath
  let detail = typeof custom === 'string' ? custom : (error.message ?? 'is not valid')
  if (error.keyword === 'additionalProperties') {
    pointer = `${pointer}/${String(params.additionalProperty)}`
    detail = 'is not a known property'
  } else if (error.keyword === 'required') {
    pointer = `${pointer}/${String(params.missingProperty)}`
    detail = 'is required'
  }
  return { in: part, pointer, detail }
}
