import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { shuttingDown } from '../errors.js'

/**
 * Once a shutdown starts, requests that still arrive on open keep-alive connections get a 503
 * problem with `Connection: close` (Fastify's own answer would not be a problem document);
 * requests already in flight finish normally.
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
  },
  { name: 'jobgate-draining' },
)
