import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { shuttingDown } from '../errors.js'

/**
 * Once a shutdown starts, requests that still arrive on open keep-alive connections get a 503
 * problem with `Connection: close` (Fastify's own answer would not be a problem document);
 * requests already in flight finish normally, also with `Connection: close`: a client that kept
 * its connection open and idle would otherwise hold the shutdown until its timeout. Connections
 * that have not sent a request are closed when the shutdown starts.
 */
export default fp(
  async function draining(app: FastifyInstance) {
    let closing = false
    // Connections that have not sent a request yet (browsers and HTTP clients open them ahead):
    // Node's close waits for them, and closes only idle kept-alive ones.
    const unused = new Set<Socket>()
    app.server.on('connection', (socket: Socket) => {
      if (closing) return socket.destroy()
      unused.add(socket)
      socket.once('close', () => unused.delete(socket))
    })
    app.server.on('request', (request: IncomingMessage) => unused.delete(request.socket))
    app.addHook('preClose', async () => {
      closing = true
      for (const socket of unused) socket.destroy()
    })
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
