import type { FastifyInstance } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import type { Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { type Config, loadConfig } from '../../src/config.js'
import { ContractChecker } from './contract-check.js'
import type { RedisCluster } from './redis-cluster.js'
import { DATA_PASSWORD, MASTER_NAME, type RedisSentinelGroup } from './redis-sentinel.js'
import { RedisServer } from './redis-server.js'
import { FreezableProxy } from './tcp-proxy.js'

export interface Launched {
  app: FastifyInstance
  config: Config
  checker: ContractChecker
  /** Base URL when started with `listen: true`. */
  url: string
}

export interface Gateway extends Launched {
  redis: RedisServer
  /** A separate client for asserting Redis state. */
  client: Redis
}

export interface ClusterGateway extends Launched {
  cluster: RedisCluster
  client: Cluster
}

export interface GatewayOptions {
  env?: Record<string, string>
  /** Serve on a real socket (127.0.0.1, free port) instead of only `inject`. */
  listen?: boolean
  /** Share a Redis server between gateways; one is started (and stopped) otherwise. */
  redis?: RedisServer
}

/**
 * A gateway with every response checked against openapi.yaml; a response that breaks the
 * contract fails the test when it ends.
 */
async function launch(t: Test, env: Record<string, string>, listen: boolean): Promise<Launched> {
  const config = loadConfig({ LOG_LEVEL: 'silent', ...env })
  const app = buildApp(config)
  const checker = new ContractChecker()
  checker.attach(app)
  t.teardown(async () => {
    await app.close()
    if (checker.violations.length > 0) {
      throw new Error(`responses broke openapi.yaml:\n${checker.violations.join('\n')}`)
    }
  })
  await app.ready()
  const url = listen ? await app.listen({ host: '127.0.0.1', port: 0 }) : ''
  return { app, config, checker, url }
}

/** A gateway on a private `redis-server` (or the one given). */
export async function startGateway(t: Test, options: GatewayOptions = {}): Promise<Gateway> {
  const redis = options.redis ?? (await RedisServer.start())
  if (!options.redis) t.teardown(() => redis.destroy())
  const client = redis.client()
  t.teardown(() => client.disconnect())
  const launched = await launch(
    t,
    { REDIS_URL: redis.url, ...options.env },
    options.listen ?? false,
  )
  return { ...launched, redis, client }
}

/** A gateway whose Redis connections pass a proxy that can freeze them (`gateway.proxy`). */
export async function startGatewayBehindProxy(
  t: Test,
  options: Omit<GatewayOptions, 'redis'> = {},
): Promise<Gateway & { proxy: FreezableProxy }> {
  const redis = await RedisServer.start()
  t.teardown(() => redis.destroy())
  const proxy = await FreezableProxy.start(redis.port)
  t.teardown(() => proxy.close())
  const env = { ...options.env, REDIS_URL: `redis://127.0.0.1:${proxy.port}` }
  return { ...(await startGateway(t, { ...options, redis, env })), proxy }
}

/** A gateway on a Redis Cluster (REDIS_CLUSTER_NODES). */
export async function startClusterGateway(
  t: Test,
  cluster: RedisCluster,
  options: Omit<GatewayOptions, 'redis'> = {},
): Promise<ClusterGateway> {
  const client = cluster.client()
  t.teardown(() => client.disconnect())
  const launched = await launch(
    t,
    { REDIS_CLUSTER_NODES: cluster.seeds, ...options.env },
    options.listen ?? false,
  )
  return { ...launched, cluster, client }
}

/** A gateway that finds its primary through Redis Sentinel (REDIS_SENTINELS). */
export async function startSentinelGateway(
  t: Test,
  group: RedisSentinelGroup,
  options: Omit<GatewayOptions, 'redis'> = {},
): Promise<Launched> {
  const sentinelLogin = group.clientLogin
  const login: Record<string, string> = sentinelLogin
    ? {
        REDIS_URL: `redis://:${DATA_PASSWORD}@ignored:1`,
        ...(sentinelLogin.username ? { REDIS_SENTINEL_USERNAME: sentinelLogin.username } : {}),
        REDIS_SENTINEL_PASSWORD: sentinelLogin.password,
      }
    : {}
  return launch(
    t,
    {
      REDIS_SENTINELS: group.sentinels,
      REDIS_SENTINEL_NAME: MASTER_NAME,
      ...login,
      ...options.env,
    },
    options.listen ?? false,
  )
}

/** Every key but the rate limiter's counters (which count rejected requests too, by design). */
export async function dataKeys(client: Redis): Promise<string[]> {
  return (await client.keys('*')).filter((key) => !key.startsWith('jobgate:ratelimit:')).sort()
}
