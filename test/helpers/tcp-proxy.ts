import { connect, createServer, type Server, type Socket } from 'node:net'

/**
 * A TCP proxy in front of a server whose connections can be frozen: they stay open but carry
 * nothing either way, as when a host vanishes without resetting them. New connections work.
 * It can also drop the connection that is about to carry a given reply.
 */
export class FreezableProxy {
  /** Replies dropped by cutReplyContaining(). */
  cuts = 0
  private cutMark: string | null = null

  private constructor(
    private readonly server: Server,
    private readonly pairs: [Socket, Socket][],
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<FreezableProxy> {
    const pairs: [Socket, Socket][] = []
    let proxy: FreezableProxy | undefined
    const server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1')
      for (const socket of [client, upstream]) socket.on('error', () => {})
      client.pipe(upstream)
      upstream.on('data', (chunk: Buffer) => {
        if (proxy?.cut(chunk)) client.destroy()
        else if (!client.destroyed) client.write(chunk)
      })
      client.on('close', () => upstream.destroy())
      upstream.on('close', () => client.destroy())
      pairs.push([client, upstream])
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const address = server.address()
    proxy = new FreezableProxy(
      server,
      pairs,
      typeof address === 'object' ? (address?.port ?? 0) : 0,
    )
    return proxy
  }

  /**
   * The next reply (on any connection, open now or later) that contains `mark` is not passed
   * on: its connection is closed instead. The server acted; the client hears nothing but the
   * connection's end.
   */
  cutReplyContaining(mark: string): void {
    this.cutMark = mark
  }

  private cut(chunk: Buffer): boolean {
    if (this.cutMark === null || !chunk.includes(this.cutMark)) return false
    this.cutMark = null
    this.cuts++
    return true
  }

  /** Every connection open now stops carrying bytes, and stays open. */
  freeze(): void {
    for (const [client, upstream] of this.pairs) {
      client.unpipe(upstream)
      upstream.removeAllListeners('data')
      client.pause()
      upstream.pause()
    }
  }

  /**
   * Every connection open now still carries requests to the server, but its replies are held
   * back: the server acts on what it gets, and the client never hears of it.
   */
  freezeReplies(): void {
    for (const [, upstream] of this.pairs) {
      upstream.removeAllListeners('data')
      upstream.pause()
    }
  }

  /**
   * Every connection open now stops carrying requests to the server, but still carries its
   * replies: what the server got before is answered, and what is sent after never arrives.
   */
  freezeRequests(): void {
    for (const [client, upstream] of this.pairs) {
      client.unpipe(upstream)
      client.pause()
    }
  }

  async close(): Promise<void> {
    for (const pair of this.pairs) for (const socket of pair) socket.destroy()
    await new Promise((resolve) => this.server.close(resolve))
  }
}
