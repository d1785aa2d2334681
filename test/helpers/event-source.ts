import { type ClientRequest, type IncomingMessage, request, type Server } from 'node:http'
import type { Socket } from 'node:net'

/**
 * A Server-Sent Events client over a real socket of its own (closing it closes the socket),
 * parsing the stream as the WHATWG format says: events separated by a blank line,
 * `field: value` lines, `:` comment lines.
 */

export interface ServerEvent {
  /** `message` unless the event names its type. */
  type: string
  id: string | null
  data: string
}

export class EventReader {
  readonly events: ServerEvent[] = []
  readonly comments: string[] = []
  retry: number | null = null
  /** What an EventSource would send as `Last-Event-ID` now (WHATWG: set by every `id` line). */
  lastEventId = ''
  /** Resolves when the server ends the stream (or the reader is closed). */
  readonly ended: Promise<void>
  private readonly waiters = new Set<() => void>()
  private finished = false

  private constructor(
    readonly response: IncomingMessage,
    private readonly request: ClientRequest,
  ) {
    this.ended = this.read()
  }

  static open(url: string, headers: Record<string, string> = {}): Promise<EventReader> {
    return new Promise((resolve, reject) => {
      const sent = request(url, { headers, agent: false }, (response) =>
        resolve(new EventReader(response, sent)),
      )
      sent.on('error', reject)
      sent.end()
    })
  }

  get status(): number {
    return this.response.statusCode ?? 0
  }

  header(name: string): string | undefined {
    const value = this.response.headers[name.toLowerCase()]
    return Array.isArray(value) ? value.join(', ') : value
  }

  get done(): boolean {
    return this.finished
  }

  /** The `data` of each event of the default type, parsed. */
  messages<T = Record<string, unknown>>(): T[] {
    return this.events.filter((e) => e.type === 'message').map((e) => JSON.parse(e.data) as T)
  }

  private async read(): Promise<void> {
    this.response.setEncoding('utf8')
    let text = ''
    try {
      for await (const chunk of this.response) {
        text += chunk as string
        let end = text.indexOf('\n\n')
        while (end !== -1) {
          this.parse(text.slice(0, end))
          text = text.slice(end + 2)
          end = text.indexOf('\n\n')
        }
      }
    } catch {
      // closed by close()
    }
    this.finish()
  }

  private parse(block: string): void {
    let type = 'message'
    let id: string | null = null
    const data: string[] = []
    let isEvent = false
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        this.comments.push(line.slice(1).trim())
        continue
      }
      const colon = line.indexOf(':')
      const field = colon === -1 ? line : line.slice(0, colon)
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
      if (field === 'retry') this.retry = Number(value)
      else if (field === 'event') type = value
      else if (field === 'id') {
        id = value
        this.lastEventId = value
      } else if (field === 'data') {
        data.push(value)
        isEvent = true
      }
    }
    if (isEvent) this.events.push({ type, id, data: data.join('\n') })
    this.notify()
  }

  private finish(): void {
    this.finished = true
    this.notify()
  }

  private notify(): void {
    for (const waiter of this.waiters) waiter()
  }

  /** Waits until `condition` holds (checked on each event) or `timeoutMs` pass; reports which. */
  async until(condition: (reader: EventReader) => boolean, timeoutMs = 5000): Promise<boolean> {
    if (condition(this)) return true
    return new Promise((resolve) => {
      const check = () => {
        if (!condition(this) && !this.finished) return
        clearTimeout(timer)
        this.waiters.delete(check)
        resolve(condition(this))
      }
      const timer = setTimeout(() => {
        this.waiters.delete(check)
        resolve(false)
      }, timeoutMs)
      this.waiters.add(check)
    })
  }

  /** Waits for `count` events in all. */
  async received(count: number, timeoutMs = 5000): Promise<ServerEvent[]> {
    await this.until((reader) => reader.events.length >= count, timeoutMs)
    return this.events
  }

  close(): void {
    this.request.destroy()
  }
}

/** A request whose answer is never read: the client side of a watcher that stopped reading. */
export async function stalledWatcher(
  url: string,
): Promise<{ status: number; localPort: number; destroy(): void }> {
  const sent = request(url, { agent: false })
  sent.on('error', () => {})
  const response = await new Promise<IncomingMessage>((resolve) => {
    sent.on('response', resolve)
    sent.end()
  })
  response.pause()
  return {
    status: response.statusCode ?? 0,
    localPort: response.socket.localPort ?? 0,
    destroy: () => sent.destroy(),
  }
}

/** The server side of each connection a server accepts from now on. */
export function serverSockets(server: Server): (localPort: number) => Socket | undefined {
  // By the client's port, read at once: a destroyed socket no longer knows its peer.
  const sockets = new Map<number, Socket>()
  server.on('connection', (socket: Socket) => sockets.set(socket.remotePort ?? 0, socket))
  return (localPort) => sockets.get(localPort)
}
