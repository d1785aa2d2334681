import type { ConnectionOptions as TlsOptions } from 'node:tls'
import { Cluster, Redis, type RedisOptions as RedisConnectionOptions } from 'ioredis'
import type { HostPort, RedisTls, SentinelSettings } from '../config.js'
import { FailoverWatch, type SentinelTrouble } from './failover-watch.js'
import { defineScripts, type RedisClient } from './scripts.js'

export interface RedisOptions {
  /**
   * A single Redis (`redis://` or `rediss://`); its credentials (and TLS, and with Sentinel its
   * database) also serve a cluster's nodes or a Sentinel-managed primary.
   */
  url: string
  /** Redis Cluster seed nodes; when given, `url` only lends its credentials. */
  clusterNodes?: HostPort[] | null
  /** Find the primary through these sentinels; when given, `url` only lends its credentials. */
  sentinel?: SentinelSettings | null
  /** For `rediss://`: the authorities to trust instead of Node's, and a client certificate. */
  tls?: RedisTls
  /** Told when a sentinel refuses the failover watch a command (a narrow ACL, say). */
  onSentinelTrouble?: SentinelTrouble
  /** A command that has not answered within this many ms fails instead of hanging. */
  commandTimeoutMs?: number
  connectTimeoutMs?: number
}

const reconnectDelay = (attempt: number) => Math.min(50 * 2 ** attempt, 2000)
/**
 * Under Sentinel an outage is usually a failover, over once a sentinel names the new primary,
 * and each try asks a sentinel first: try more often.
 */
const sentinelReconnectDelay = (attempt: number) => Math.min(50 * 2 ** attempt, 500)

/**
 * A client for the request path: no offline queue (a command while disconnected fails at once)
 * and a command timeout.
 */
export function createRedisClient(options: RedisOptions): RedisClient {
  const perConnection = {
    maxRetriesPerRequest: 0,
    // How long a connection given up as silent lingers (ioredis' default: 2 s) before it is
    // destroyed and replaced; a healthy Redis closes its end at once.
    disconnectTimeout: 200,
    commandTimeout: options.commandTimeoutMs ?? 1000,
    connectTimeout: options.connectTimeoutMs ?? 2000,
  }
  let client: RedisClient
  if (options.clusterNodes) {
    const url = new URL(options.url)
    client = new Cluster(options.clusterNodes, {
      enableOfflineQueue: false,
      enableAutoPipelining: false,
      clusterRetryStrategy: reconnectDelay,
      slotsRefreshTimeout: 2000,
      // ioredis looks the seeds' names up and connects to the addresses, where TLS would
      // check a certificate made for the name against the address; phpredis connects by name.
      ...(url.protocol === 'rediss:'
        ? {
            dnsLookup: (host: string, callback: (error: null, address: string) => void) =>
              callback(null, host),
          }
        : {}),
      redisOptions: { ...perConnection, ...credentials(url, options.tls) },
    })
  } else if (options.sentinel) {
    const url = new URL(options.url)
    const database = Number(url.pathname.slice(1) || 0)
    const login = credentials(url, options.tls)
    client = new Redis({
      ...perConnection,
      ...login,
      // Without this ioredis connects to the primary in plain text even when given TLS options.
      ...(login.tls ? { enableTLSForSentinelMode: true } : {}),
      ...(database ? { db: database } : {}),
      sentinels: options.sentinel.sentinels,
      name: options.sentinel.name,
      ...sentinelLogin(options.sentinel),
      enableOfflineQueue: false,
      enableAutoPipelining: false,
      retryStrategy: sentinelReconnectDelay,
      sentinelRetryStrategy: sentinelReconnectDelay,
    })
    follow(client, new FailoverWatch(options.sentinel, options.onSentinelTrouble))
  } else {
    client = new Redis(options.url, {
      ...perConnection,
      ...tlsOptions(new URL(options.url), options.tls),
      enableOfflineQueue: false,
      // Measured (bench/RESULTS.md): autopipelining keeps one batch in flight per connection,
      // so the gateway idles while Redis works; plain writes let both work at once.
      enableAutoPipelining: false,
      retryStrategy: reconnectDelay,
    })
  }
  if (client instanceof Redis) refuseDatabaseZeroInstead(client)
  defineScripts(client)
  return client
}

/**
 * ioredis reports a `SELECT` the server refuses (a database out of range, an ACL without it)
 * as an error event and then carries on, on database 0: every job written where no worker of
 * that database looks. Such a connection is dropped as it becomes ready and tried again later,
 * so requests get 503 and `/readyz` says not ready until the database can be selected.
 */
function refuseDatabaseZeroInstead(client: Redis): void {
  const db = client.options.db ?? 0
  if (db === 0) return
  let refused: Error | null = null
  client.on('error', (error: Error & { command?: { name?: string } }) => {
    if (error.command?.name === 'select') refused = error
  })
  client.on('ready', () => {
    if (refused === null) return
    const reason = refused.message
    refused = null
    client.disconnect(true)
    client.emit(
      'error',
      new Error(`Redis refuses database ${db} (the URL's /${db}): ${reason}; not using database 0`),
    )
  })
}

/** The sentinels' own login, as ioredis' Sentinel options name it. */
function sentinelLogin({ username, password }: SentinelSettings) {
  return {
    ...(username ? { sentinelUsername: username } : {}),
    ...(password ? { sentinelPassword: password } : {}),
  }
}

function credentials(url: URL, tls: RedisTls | undefined) {
  return {
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...tlsOptions(url, tls),
  }
}

function tlsOptions(url: URL, tls: RedisTls | undefined): { tls?: TlsOptions } {
  if (url.protocol !== 'rediss:') return {}
  return {
    tls: {
      ...(tls?.ca ? { ca: tls.ca } : {}),
      ...(tls?.cert ? { cert: tls.cert } : {}),
      ...(tls?.key ? { key: tls.key } : {}),
    },
  }
}

/** The failover watch of each client on Sentinel (and of its duplicates). */
const watches = new WeakMap<RedisClient, FailoverWatch>()

function follow(client: Redis, watch: FailoverWatch): void {
  watch.watch(client)
  watches.set(client, watch)
}

/** Closes a client after its pending replies, or at once when it cannot send them. */
export async function closeClient(client: RedisClient): Promise<void> {
  await client.quit().catch(() => client.disconnect())
}

/** Resolves once the client is ready, or after `timeoutMs`; reports which. */
export function waitUntilReady(client: RedisClient, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true)
  return nextReady(client, timeoutMs)
}

/**
 * Replaces a connection that may be half open with a new one and resolves once that is ready
 * (or after `timeoutMs`). Until ioredis sees the old socket close it still counts as ready and
 * writes commands there, so its owner should wait for this before the next command.
 */
export function reconnect(client: RedisClient, timeoutMs: number): Promise<boolean> {
  const ready = nextReady(client, timeoutMs)
  client.disconnect(true)
  return ready
}

/** Resolves true at the client's next `ready`; false after `timeoutMs`, or once it has ended for good (disconnected). */
function nextReady(client: RedisClient, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ready: boolean) => {
      clearTimeout(timer)
      client.off('ready', onReady)
      client.off('end', onEnd)
      resolve(ready)
    }
    const onReady = () => done(true)
    const onEnd = () => done(false)
    const timer = setTimeout(() => done(false), timeoutMs)
    client.on('ready', onReady)
    client.on('end', onEnd)
  })
}

/**
 * Error replies that mean "cannot serve now": a failover, a dataset loading, out of memory, a
 * busy script, failing snapshots (MISCONF), a full client table, a connection not (or no
 * longer) logged in (NOAUTH), a slot moving (MOVED, ASK: ioredis follows them, but a pipeline
 * only partly redirected comes back with them); the PHP worker's list is the same but for the
 * last two, which its cluster connection follows.
 */
const UNAVAILABLE_REPLIES =
  /^(LOADING|CLUSTERDOWN|MASTERDOWN|READONLY|TRYAGAIN|OOM|BUSY|NOREPLICAS|UNBLOCKED|MISCONF|NOAUTH|MOVED|ASK|ERR max number of clients reached)\b/

/**
 * True when an error means "Redis cannot serve this now" (connection down, timeout, failover,
 * out of memory) rather than a bug in a command or script.
 */
export function isUnavailableError(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  if (error.name === 'ReplyError') return UNAVAILABLE_REPLIES.test(error.message)
  return true
}

/**
 * A connection for blocking commands (BLPOP on wake lists): a blocked command holds its whole
 * connection, so it must never share the request path's. Its timeout is the command's own
 * plus a grace period, not the request path's command timeout.
 */
export function duplicateForBlocking(client: RedisClient): RedisClient {
  return duplicate(client, {
    commandTimeout: undefined,
    blockingTimeout: 60_000,
    blockingTimeoutGrace: BLOCKING_GRACE_MS,
  })
}

/**
 * A connection for `WAIT`, which holds its connection until replicas answer: the request
 * path's command timeout plus the longest wait.
 */
export function duplicateForWaits(client: RedisClient, waitMs: number): RedisClient {
  const { commandTimeout } =
    client instanceof Redis ? client.options : (client.options.redisOptions ?? {})
  return duplicate(client, { commandTimeout: waitMs + (commandTimeout ?? 1000) })
}

/** A new connection like `client` (following its failovers), with some options changed. */
function duplicate(client: RedisClient, options: RedisConnectionOptions): RedisClient {
  if (!(client instanceof Redis)) return client.duplicate(undefined, { redisOptions: options })
  const copy = client.duplicate(options)
  refuseDatabaseZeroInstead(copy)
  const watch = watches.get(client)
  if (watch) follow(copy, watch)
  return copy
}

/** How long past its own timeout ioredis waits for a blocking command before giving up. */
const BLOCKING_GRACE_MS = 1000

/**
 * True when a blocking command that answered null did so because ioredis gave up on it, not
 * because Redis ended the block: the connection may be half open (a host that vanished without
 * a reset), and ioredis keeps it. The caller should reconnect (`disconnect(true)`).
 */
export function blockTimedOutLocally(sentAt: number, blockMs: number): boolean {
  // Redis ends blocks on its timer, up to about 100 ms late; ioredis at the grace period.
  return Date.now() - sentAt >= blockMs + BLOCKING_GRACE_MS - 100
}
