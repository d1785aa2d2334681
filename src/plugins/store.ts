import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { createRedisClient } from '../queue/connection.js'
import type { RedisClient } from '../queue/scripts.js'
import { Store, type StoreSettings } from '../queue/store.js'

declare module 'fastify' {
  interface FastifyInstance {
    store: Store
  }
}

export interface StoreOptions {
  config: Config
  /** A client to use instead of one built from `config.redisUrl`; the app still closes it. */
  client?: RedisClient
}

const LOG_EVERY_MS = 5000

/** What the store's scripts need from the configuration. */
export function storeSettings(config: Config): StoreSettings {
  return {
    keyPrefix: config.keyPrefix,
    idempotencyTtlMs: config.idempotencyTtlMs,
    jobRetentionMs: config.jobRetentionMs,
    deadRetentionMs: config.deadRetentionMs,
    eventsMaxLen: config.eventsMaxLen,
    maxQueueDepth: config.maxQueueDepth,
    maxQueues: config.maxQueues,
  }
}

/** With writes waiting for replicas: says at boot whether the primary has enough of them. */
async function reportReplicas(app: FastifyInstance, store: Store): Promise<void> {
  const replicas = await store.replicas().catch(() => null)
  if (replicas === null) return
  const fields = { replicas_online: replicas.online, replicas_required: replicas.required }
  if (replicas.online >= replicas.required) {
    app.log.info(fields, `Writes are answered once ${replicas.required} replica(s) hold them`)
  } else {
    app.log.warn(
      fields,
      `REDIS_WAIT_REPLICAS is ${replicas.required} but the Redis primary has ${replicas.online} replica(s) online: job submissions get 503 NOT_REPLICATED until it has enough`,
    )
  }
}

/** Says at boot when Redis may evict keys: a full Redis would then drop jobs, not refuse them. */
async function reportEviction(app: FastifyInstance, store: Store): Promise<void> {
  const policies = await store.evictionPolicies().catch(() => [])
  const evicting = policies.filter((policy) => policy !== 'noeviction')
  if (evicting.length === 0) return
  app.log.warn(
    { maxmemory_policy: evicting.join(',') },
    `Redis's maxmemory-policy is ${evicting.join(', ')}: when it reaches maxmemory it deletes keys, jobs and idempotency records among them (a 202 then means nothing). Set maxmemory-policy noeviction: a full Redis then refuses new jobs (503) and keeps the ones it has.`,
  )
}

/** Connects to Redis and decorates the app with the store; closes it on shutdown. */
export default fp(
  async function store(app: FastifyInstance, { config, client: given }: StoreOptions) {
    const client =
      given ??
      createRedisClient({
        url: config.redisUrl,
        clusterNodes: config.redisClusterNodes,
        sentinel: config.redisSentinel,
        tls: config.redisTls,
        commandTimeoutMs: config.redisCommandTimeoutMs,
        onSentinelTrouble: ({ host, port }, what, error) =>
          app.log.warn(
            { err: error, sentinel: `${host}:${port}` },
            what === 'subscribe'
              ? 'A sentinel refused the subscription to +switch-master: the gateway learns of a failover from its once-a-second check instead'
              : 'A sentinel refused the check for the current primary (SENTINEL MASTER): a missed failover announcement goes unnoticed while this lasts',
          ),
      })
    let lastLogged = 0
    client.on('error', (error: Error) => {
      const now = Date.now()
      if (now - lastLogged < LOG_EVERY_MS) return
      lastLogged = now
      app.log.warn({ err: error }, 'Redis connection error')
    })
    const store = new Store(client, {
      settings: storeSettings(config),
      breaker: config.breaker,
      maxBlockingConnections: config.longPollConnections,
      replication: config.redisWaitReplicas,
    })
    if (!(await store.waitUntilReady(2000))) {
      app.log.warn('Redis is not reachable yet; requests get 503 until it is')
    } else {
      await reportReplicas(app, store)
      await reportEviction(app, store)
    }
    store.breaker.onStateChange((state) => {
      const log = state === 'open' ? app.log.error.bind(app.log) : app.log.warn.bind(app.log)
      log({ breaker: state }, `Redis circuit breaker ${state.replace('_', '-')}`)
    })
    app.decorate('store', store)
    app.addHook('preClose', async () => store.interruptWaits())
    app.addHook('onClose', () => store.close())
  },
  { name: 'jobgate-store' },
)
