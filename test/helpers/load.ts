import { randomUUID } from 'node:crypto'

export interface Outcome {
  key: string
  started: number
  finished: number
  status: number | 'error'
  code?: string
  id?: string
  retryAfter?: string | null
}

/**
 * A steady stream of job submissions from `concurrency` loops, each with a fresh idempotency
 * key, every outcome recorded, until stopped.
 */
export class SubmissionLoad {
  readonly outcomes: Outcome[] = []
  private running = true
  private readonly loops: Promise<void>[]

  constructor(
    private readonly url: string,
    concurrency: number,
    private readonly headers: Record<string, string> = {},
    private readonly timeoutMs = 10_000,
    private readonly type = 't',
  ) {
    this.loops = Array.from({ length: concurrency }, () => this.loop())
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const key = randomUUID()
      const started = Date.now()
      const outcome: Outcome = { key, started, finished: 0, status: 'error' }
      try {
        const res = await fetch(`${this.url}/v1/queues/q/jobs`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': key, ...this.headers },
          body: JSON.stringify({ type: this.type, payload: { key } }),
          signal: AbortSignal.timeout(this.timeoutMs),
        })
        outcome.status = res.status
        outcome.retryAfter = res.headers.get('retry-after')
        const body = (await res.json()) as { id?: string; code?: string }
        if (body.id) outcome.id = body.id
        if (body.code) outcome.code = body.code
      } catch {
        outcome.status = 'error'
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      outcome.finished = Date.now()
      this.outcomes.push(outcome)
    }
  }

  async stop(): Promise<Outcome[]> {
    this.running = false
    await Promise.all(this.loops)
    return this.outcomes
  }

  accepted(): Outcome[] {
    return this.outcomes.filter((outcome) => outcome.status === 202)
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) return false
    await sleep(20)
  }
  return true
}
