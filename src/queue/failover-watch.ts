import { Redis } from 'ioredis'
import type { SentinelSettings } from '../config.js'

/**
 * Hears the sentinels announce a new primary (`+switch-master`) and moves every client of the
 * process that is still connected elsewhere to it at once: the old primary goes on taking
 * writes until Sentinel demotes it, and the failover loses them.
 *
 * Used instead of ioredis' own `failoverDetector`, whose announcement can arrive while the
 * client is reconnecting after the primary died; ioredis then gives the client up for good.
 * A client that is reconnecting needs nothing: each attempt asks a sentinel.
 */
export class FailoverWatch {
  private readonly clients = new Set<Redis>()
  private readonly subscribers: Redis[]

  constructor(private readonly settings: SentinelSettings) {
    this.subscribers = settings.sentinels.map(({ host, port }) => {
      const subscriber = new Redis({
        host,
        port,
        ...(settings.password ? { password: settings.password } : {}),
        retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 2000),
        maxRetriesPerRequest: null,
      })
      // A sentinel out of reach only means this one cannot tell us; the clients still follow
      // the others, and every reconnect asks one.
      subscriber.on('error', () => {})
      subscriber.subscribe('+switch-master').catch(() => {})
      subscriber.on('message', (_channel: string, message: string) => this.switched(message))
      return subscriber
    })
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
    for (const subscriber of this.subscribers) subscriber.disconnect()
  }

  /** `<master name> <old ip> <old port> <new ip> <new port>` */
  private switched(message: string): void {
    const [name, , , host, port] = message.split(' ')
    if (name !== this.settings.name) return
    for (const client of this.clients) {
      const stream = client.stream
      const onNewPrimary = stream?.remoteAddress === host && String(stream?.remotePort) === port
      if (client.status === 'ready' && !onNewPrimary) client.disconnect(true)
    }
  }
}
