import { connect, createServer, type Server, type Socket } from 'node:net'

/**
 * A TCP proxy in front of a server whose connections can be frozen: they stay open but carry
 * nothing either way, as when a host vanishes without resetting them. New connections work.
 */
export class FreezableProxy {
  private constructor(
    private readonly server: Server,
    private readonly pairs: [Socket, Socket][],
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<FreezableProxy> {
    const pairs: [Socket, Socket][] = []
    const server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1')
      for (const socket of [client, upstream]) socket.on('error', () => {})
      client.pipe(upstream)
      upstream.pipe(client)
      client.on('close', () => upstream.destroy())
      upstream.on('close', () => client.destroy())
      pairs.push([client, upstream])
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const address = server.address()
    return new FreezableProxy(server, pairs, typeof address === 'object' ? (address?.port ?? 0) : 0)
  }

  /** Every connection open now stops carrying bytes, and stays open. */
  freeze(): void {
    for (const [client, upstream] of this.pairs) {
      client.unpipe(upstream)
      upstream.unpipe(client)
      client.pause()
      upstream.pause()
    }
  }

  /**
   * Every connection open now still carries requests to the server, but its replies are held
   * back: the server acts on what it gets, and the client never hears of it.
   */
  freezeReplies(): void {
    for (const [client, upstream] of this.pairs) {
      upstream.unpipe(client)
      upstream.pause()
    }
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) for (const socket of pair) socket.destroy()
    await new Promise((resolve) => this.server.close(resolve))
  }
}
