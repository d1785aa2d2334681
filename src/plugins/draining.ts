import type { IncomingMessage, ServerResponse } from 'node:http'
import { Server as NetServer, type Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { shuttingDown } from '../errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Waits, in a shutdown, for kept-alive connections to bring their last request or the
     * grace to pass; run last of the preClose hooks (see buildApp), so that long polls and
     * event streams end at once, before it.
     */
    keptAliveGrace: () => Promise<void>
  }
}

export interface DrainingOptions {
  /** How long a shutdown may take; the keep-alive grace below is a quarter of it at most. */
  shutdownTimeoutMs: number
}

/** How long kept-alive connections may still bring a request once a shutdown starts. */
const KEEP_ALIVE_GRACE_MS = 1000

/**
 * Once a shutdown starts, the gateway stops accepting connections, and requests that still
 * arrive on open keep-alive connections get a 503 problem with `Connection: close` (Fastify's
 * own answer would not be a problem document); requests already in flight finish normally,
 * also with `Connection: close`. Kept-alive connections get a short grace before they are
 * closed: Node's close would end the idle ones at once, and a client that had just sent its
 * next request on one would see the connection reset instead of an answer it can act on.
 * Connections that have not sent a request are closed when the shutdown starts; requests
 * whose bodies are still arriving halfway through the shutdown timeout are ended then.
 */
export default fp(
  async function draining(app: FastifyInstance, { shutdownTimeoutMs }: DrainingOptions) {
    let closing = false
    const open = new Set<Socket>()
    // Connections that have not sent a request yet (browsers and HTTP clients open them ahead):
    // Node's close waits for them, and closes only idle kept-alive ones.
    const unused = new Set<Socket>()
    app.server.on('connection', (socket: Socket) => {
      if (closing) return socket.destroy()
      open.add(socket)
      unused.add(socket)
      socket.once('close', () => {
        open.delete(socket)
        unused.delete(socket)
      })
    })
    const inFlight = new Set<IncomingMessage>()
    app.server.on('request', (request: IncomingMessage, response: ServerResponse) => {
      unused.delete(request.socket)
      inFlight.add(request)
      response.once('close', () => inFlight.delete(request))
    })
    let bodiesDue: NodeJS.Timeout | undefined
    app.addHook('preClose', async () => {
      closing = true
      for (const socket of unused) socket.destroy()
      bodiesDue = setTimeout(() => cutOffBodies(inFlight), shutdownTimeoutMs / 2)
      bodiesDue.unref()
      if (!app.server.listening) return
      // The listener alone (net's close): http's would also end the idle kept-alive
      // connections now. Fastify's close, after every preClose hook, ends those left.
      NetServer.prototype.close.call(app.server)
    })
    // Without a listener (inject) no connection is open, and the wait ends at once.
    app.decorate('keptAliveGrace', async () => {
      if (closing) await allClosed(open, Math.min(KEEP_ALIVE_GRACE_MS, shutdownTimeoutMs / 4))
    })
    app.addHook('onClose', async () => clearTimeout(bodiesDue))
    app.addHook('onRequest', (_request, reply, done) => {
      if (!closing) return done()
      reply.header('connection', 'close')
      done(shuttingDown())
    })
    app.addHook('onSend', (_request, reply, payload, done) => {
      if (closing) reply.header('connection', 'close')
      done(null, payload)
    })
  },
  { name: 'jobgate-draining' },
)

/**
 * Ends the requests whose bodies are still arriving half a shutdown timeout after it started
 * (a stalled or deliberately slow client), so that they do not hold the shutdown until it
 * times out. A body being read gets a 503 problem, as the read's own error, and the connection
 * is closed after it; a request whose body nobody reads loses its connection.
 * None of them was accepted: a job is written only once its whole body is in.
 */
function cutOffBodies(requests: Set<IncomingMessage>): void {
  for (const request of requests) {
    if (request.complete) continue
    if (request.listenerCount('error') === 0) {
      request.socket.destroy()
      continue
    }
    request.pause()
    request.emit('error', shuttingDown())
  }
}

/** Resolves once every socket has closed, or after `ms`. */
function allClosed(sockets: Set<Socket>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(finish, ms)
    function finish() {
      clearTimeout(timer)
      for (const socket of sockets) socket.off('close', check)
      resolve()
    }
    function check() {
      if ([...sockets].every((socket) => socket.destroyed)) finish()
    }
    for (const socket of sockets) socket.once('close', check)
    check()
  })
}
