import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { shuttingDown } from '../errors.js'

/**
 * Once a shutdown starts, requests that still arrive on open keep-alive connections get a 503
 * problem with `Connection: close` (Fastify's own answer would not be a problem document);
 * requests already in flight finish normally, also with `Connection: close`: a client that kept
 * its connection open and idle would otherwise hold the shutdown until its timeout.
 */
export default fp(
  async function draining(app: FastifyInstance) {
    let closing = false
    app.addHook('preClose', async () => {
      closing = true
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
