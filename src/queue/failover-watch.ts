import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { Redis, type RedisOptions } from 'ioredis'
import type { HostPort, SentinelSettings } from '../config.js'

/** How often a sentinel is asked which primary is current, besides hearing it announced. */
const SENTINEL_CHECK_INTERVAL_MS = 1000

/**
 * Told when a sentinel refuses the watch a command (a check, or the subscription): once per
 * sentinel and reason until it answers again, since the watch goes on trying.
 */
export type SentinelTrouble = (sentinel: HostPort, what: string, error: Error) => void

/**
 * Moves every client of the process that is still connected elsewhere to a new primary as
 * soon as the sentinels name one: the old primary goes on taking writes until Sentinel demotes
 * it (or for as long as Sentinel cannot reach it), and the failover loses them.
 *
 * It hears the announcement (`+switch-master`), and once a second asks a sentinel for the
 * master's address and configuration epoch, in case the announcement was missed (it is sent
 * once, to whoever listens then). A sentinel whose epoch is lower than one seen before has not
 * caught up with a failover yet and moves nothing.
 *
 * Used instead of ioredis' own `failoverDetector`, whose announcement can arrive while the
 * client is reconnecting after the primary died; ioredis then gives the client up for good.
 * A client that is reconnecting needs nothing: each attempt asks a sentinel.
 */
export class FailoverWatch {
  private readonly clients = new Set<Redis>()
  private readonly subscribers: Redis[]
  /** One connection per sentinel for the checks; `next` is the one to ask. */
  private readonly askers: Redis[]
  private next = 0
  private checking = false
  /** The highest configuration epoch a sentinel has named; -1 before the first answer. */
  private epoch = -1
  private readonly timer: NodeJS.Timeout

  /** The last trouble told of each sentinel and command, by `host:port what`. */
  private readonly told = new Map<string, string>()

  constructor(
    private readonly settings: SentinelSettings,
    private readonly onTrouble: SentinelTrouble = () => {},
  ) {
    this.subscribers = settings.sentinels.map((sentinel) => {
      // Subscribed on each connect below instead: ioredis' own resubscription leaves a
      // refused SUBSCRIBE (NOPERM) as an unhandled rejection.
      const subscriber = this.connect(sentinel, { autoResubscribe: false })
      subscriber.on('ready', () =>
        subscriber.subscribe('+switch-master').then(
          () => this.answered(sentinel, 'subscribe'),
          (error: Error) => this.refused(sentinel, 'subscribe', error),
        ),
      )
      subscriber.on('message', (_channel: string, message: string) => this.announced(message))
      return subscriber
    })
    this.askers = settings.sentinels.map((sentinel) =>
      this.connect(sentinel, { commandTimeout: 500, maxRetriesPerRequest: 0 }),
    )
    this.timer = setInterval(() => void this.check(), SENTINEL_CHECK_INTERVAL_MS)
    this.timer.unref()
  }

  /** Follows failovers for `client` until it ends; the watch closes with its last client. */
  watch(client: Redis): void {
    this.clients.add(client)
    client.once('end', () => {
      this.clients.delete(client)
      if (this.clients.size === 0) this.close()
    })
  }

  close(): void {
    clearInterval(this.timer)
    for (const connection of [...this.subscribers, ...this.askers]) connection.disconnect()
  }

  private connect({ host, port }: HostPort, options: RedisOptions) {
    const { username, password } = this.settings
    const connection = new Redis({
      host,
      port,
      ...(username ? { username } : {}),
      ...(password ? { password } : {}),
      retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 2000),
      maxRetriesPerRequest: null,
      // A sentinel answers no INFO (and a sentinel user may not be allowed it).
      enableReadyCheck: false,
      ...options,
    })
    // A sentinel out of reach, or one that refuses us a command, only means this one cannot
    // tell us: the others can, every reconnect of a client asks one, and Sentinel drops the
    // clients of a primary it demotes.
    connection.on('error', () => {})
    return connection
  }

  /** `<master name> <old ip> <old port> <new ip> <new port>` */
  private announced(message: string): void {
    const [name, , , host, port] = message.split(' ')
    if (name === this.settings.name && host && port) void this.moveTo(host, port)
  }

  private async check(): Promise<void> {
    if (this.checking) return
    this.checking = true
    const asker = this.askers[this.next]
    const sentinel = this.settings.sentinels[this.next]
    try {
      const reply = (await asker?.call('SENTINEL', 'MASTER', this.settings.name)) as string[]
      if (sentinel) this.answered(sentinel, 'check')
      const field = (name: string) => reply[reply.indexOf(name) + 1] ?? ''
      const epoch = Number(field('config-epoch'))
      if (epoch >= this.epoch) {
        this.epoch = epoch
        await this.moveTo(field('ip'), field('port'))
      }
    } catch (error) {
      // Out of reach is an outage the clients report themselves; a refusal is configuration.
      if (sentinel && asker?.status === 'ready') this.refused(sentinel, 'check', error as Error)
      this.next = (this.next + 1) % this.askers.length
    } finally {
      this.checking = false
    }
  }

  private refused(sentinel: HostPort, what: string, error: Error): void {
    const key = `${sentinel.host}:${sentinel.port} ${what}`
    if (this.told.get(key) === error.message) return
    this.told.set(key, error.message)
    this.onTrouble(sentinel, what, error)
  }

  private answered(sentinel: HostPort, what: string): void {
    this.told.delete(`${sentinel.host}:${sentinel.port} ${what}`)
  }

  /** Reconnects the ready clients that are not on `host:port` (a sentinel may name a host). */
  private async moveTo(host: string, port: string): Promise<void> {
    const addresses = isIP(host)
      ? [host]
      : await lookup(host, { all: true }).then(
          (found) => found.map(({ address }) => address),
          () => null,
        )
    if (addresses === null) return
    for (const client of this.clients) {
      const stream = client.stream
      const onPrimary =
        addresses.includes(stream?.remoteAddress?.replace(/^::ffff:/, '') ?? '') &&
        String(stream?.remotePort) === port
      if (client.status === 'ready' && !onPrimary) client.disconnect(true)
    }
  }
}
