import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import type { Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { type Config, loadConfig } from '../../src/config.js'
import { ContractChecker } from './contract-check.js'
import { RedisServer } from './redis-server.js'

export interface Gateway {
  app: FastifyInstance
  config: Config
  redis: RedisServer
  /** A separate client for asserting Redis state. */
  client: Redis
  checker: ContractChecker
  /** Base URL when started with `listen: true`. */
  url: string
}

export interface GatewayOptions {
  env?: Record<string, string>
  /** Serve on a real socket (127.0.0.1, free port) instead of only `inject`. */
  listen?: boolean
  /** Share a Redis server between gateways; one is started (and stopped) otherwise. */
  redis?: RedisServer
}

/**
 * A gateway on a private `redis-server`, with every response checked against openapi.yaml;
 * a response that breaks the contract fails the test when it ends.
 */
export async function startGateway(t: Test, options: GatewayOptions = {}): Promise<Gateway> {
  const redis = options.redis ?? (await RedisServer.start())
  if (!options.redis) t.teardown(() => redis.destroy())
  const config = loadConfig({ REDIS_URL: redis.url, LOG_LEVEL: 'silent', ...options.env })
  const app = buildApp(config)
  const checker = new ContractChecker()
  checker.attach(app)
  const client = redis.client()
  t.teardown(async () => {
    await app.close()
    client.disconnect()
    if (checker.violations.length > 0) {
      throw new Error(`responses broke openapi.yaml:\n${checker.violations.join('\n')}`)
    }
  })
  await app.ready()
  let url = ''
  if (options.listen) url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, config, redis, client, checker, url }
}
