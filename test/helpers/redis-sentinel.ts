import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { freePort, RedisServer } from './redis-server.js'
import { type Certificates, tlsPortArgs } from './tls.js'

export const MASTER_NAME = 'jobgate'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Sentinel group: ${what} did not happen`)
    await sleep(50)
  }
}

/** Who the gateway and the worker log in as on the sentinel, by how the group was started. */
export const SENTINEL_LOGIN = { username: 'jobgate', password: 'sentinel-secret' }
export const SENTINEL_PASSWORD = 'sentinel-requirepass'
export const DATA_PASSWORD = 'data-secret'

/**
 * `acl`: the sentinel has ACL users only; `password`: it has `requirepass`. Either way the data
 * nodes require `DATA_PASSWORD`.
 */
export type SentinelAuth = 'acl' | 'password'

/**
 * The least a sentinel user needs (README, "Redis Sentinel"): the primary's address, the other
 * sentinels (ioredis asks), the master's state for the gateway's checks, and the
 * `+switch-master` announcements.
 */
const SENTINEL_USER_RULES = [
  '-@all',
  '+ping',
  '+hello',
  '+auth',
  '+sentinel|get-master-addr-by-name',
  '+sentinel|sentinels',
  '+sentinel|master',
  '+subscribe',
  '&+switch-master',
]

/**
 * A real local Redis Sentinel setup: a primary, its replicas (one unless told) and one sentinel (quorum 1) that
 * monitors them as `jobgate`, each a private redis-server process. With `auth`, the data nodes
 * require `DATA_PASSWORD`, and the sentinel takes only its ACL users (`acl`: `SENTINEL_LOGIN`,
 * allowed just what a client of the group needs, and an admin for the helper) or only
 * `SENTINEL_PASSWORD` (`password`).
 */
export class RedisSentinelGroup {
  private constructor(
    readonly servers: RedisServer[],
    readonly sentinel: RedisServer,
    readonly auth: SentinelAuth | null,
    /** With `tls`: each data node's TLS port, the one the sentinel knows it by. */
    private readonly tlsPorts: Map<RedisServer, number> | null,
  ) {}

  static async start({
    replicas = 1,
    auth = null as SentinelAuth | null,
    tls = null as Certificates | null,
  } = {}): Promise<RedisSentinelGroup> {
    // Every data node may become a replica of another: each logs in to its primary.
    const dataAuth = auth ? ['--requirepass', DATA_PASSWORD, '--masterauth', DATA_PASSWORD] : []
    const login = auth ? { password: DATA_PASSWORD } : undefined
    const tlsPorts = tls ? new Map<RedisServer, number>() : null
    // With `tls` the group (replication, the sentinel's checks, clients) uses only the nodes'
    // TLS ports, which take the CA's certificates alone; the plain ones are the tests' own.
    const dataNode = async (args: string[]) => {
      const tlsPort = await freePort()
      const tlsArgs = tls ? [...tlsPortArgs(tls, tlsPort), '--tls-replication', 'yes'] : []
      const server = await RedisServer.start({ args: [...args, ...dataAuth, ...tlsArgs], login })
      tlsPorts?.set(server, tlsPort)
      return { server, port: tls ? tlsPort : server.port }
    }
    // A replica's first sync would wait 5 s for others to share it.
    const primary = await dataNode(['--repl-diskless-sync-delay', '0'])
    const followers = await Promise.all(
      Array.from({ length: replicas }, () =>
        dataNode(['--replicaof', '127.0.0.1', String(primary.port)]),
      ),
    )
    const config = join(primary.server.dir, 'sentinel.conf')
    writeFileSync(
      config,
      [
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${primary.port} 1`,
        `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
        `sentinel failover-timeout ${MASTER_NAME} 10000`,
        ...(auth ? [`sentinel auth-pass ${MASTER_NAME} ${DATA_PASSWORD}`] : []),
        ...(auth === 'acl'
          ? [
              'user default off',
              `user admin on >admin-secret +@all &*`,
              `user ${SENTINEL_LOGIN.username} on >${SENTINEL_LOGIN.password} ${SENTINEL_USER_RULES.join(' ')}`,
            ]
          : []),
        ...(auth === 'password' ? [`requirepass ${SENTINEL_PASSWORD}`] : []),
        ...(tls
          ? [
              'tls-replication yes',
              `tls-cert-file ${tls.clientCert}`,
              `tls-key-file ${tls.clientKey}`,
              `tls-ca-cert-file ${tls.ca}`,
            ]
          : []),
        '',
      ].join('\n'),
    )
    const sentinel = await RedisServer.start({
      configFile: config,
      args: ['--sentinel'],
      ...(auth === 'acl' ? { login: { username: 'admin', password: 'admin-secret' } } : {}),
      ...(auth === 'password' ? { login: { password: SENTINEL_PASSWORD } } : {}),
    }).catch(async (error: unknown) => {
      await Promise.all([primary, ...followers].map(({ server }) => server.destroy()))
      throw error
    })
    const servers = [primary, ...followers].map(({ server }) => server)
    const group = new RedisSentinelGroup(servers, sentinel, auth, tlsPorts)
    await waitFor('the replicas in sync, known to the sentinel', () => group.replicasReady())
    return group
  }

  /** How a client of the group logs in to the sentinel; null when it takes anyone. */
  get clientLogin(): { username?: string; password: string } | null {
    if (this.auth === 'acl') return SENTINEL_LOGIN
    if (this.auth === 'password') return { password: SENTINEL_PASSWORD }
    return null
  }

  /** `host:port`, the gateway's REDIS_SENTINELS and the worker's --sentinel. */
  get sentinels(): string {
    return `127.0.0.1:${this.sentinel.port}`
  }

  /** The server the sentinel names as the primary now. */
  async primary(): Promise<RedisServer> {
    const [, port] = await this.ask('get-master-addr-by-name', MASTER_NAME)
    const server = this.servers.find(
      (candidate) => (this.tlsPorts?.get(candidate) ?? candidate.port) === Number(port),
    )
    if (!server) throw new Error(`the sentinel names an unknown primary (port ${port})`)
    return server
  }

  /**
   * Returns once every write the primary took so far is on the replica (a write of its own,
   * then WAIT for it: the replication stream keeps order).
   */
  async replicated(): Promise<void> {
    const replicas = this.servers.length - 1
    const acked = await (await this.primary()).ask(async (client) => {
      await client.set('sentinel-test:mark', String(Date.now()))
      return client.wait(replicas, 5000)
    })
    if (acked !== replicas) throw new Error('the replicas did not acknowledge the writes')
  }

  /** `SENTINEL FAILOVER`; resolves with the new primary once the sentinel names it. */
  async failover(): Promise<RedisServer> {
    const old = await this.primary()
    await this.ask('failover', MASTER_NAME)
    return this.newPrimary(old)
  }

  /** Resolves once the sentinel names another primary than `old`. */
  async newPrimary(old: RedisServer, timeoutMs = 20_000): Promise<RedisServer> {
    await waitFor('a failover', async () => (await this.primary()) !== old, timeoutMs)
    return this.primary()
  }

  /** Connections the sentinel serves, besides the one asking. */
  async sentinelClients(): Promise<number> {
    return (await this.sentinelClientList()).length - 1
  }

  /** `CLIENT LIST` of the sentinel, each line's fields by name (the asking one included). */
  async sentinelClientList(): Promise<Record<string, string>[]> {
    const list = (await this.sentinel.ask((client) => client.call('CLIENT', 'LIST'))) as string
    return list
      .trim()
      .split('\n')
      .map((line) => Object.fromEntries(line.split(' ').map((field) => field.split('=', 2))))
  }

  async destroy(): Promise<void> {
    await this.sentinel.destroy()
    await Promise.all(this.servers.map((server) => server.destroy()))
  }

  private async replicasReady(): Promise<boolean> {
    const replicas = (await this.ask('replicas', MASTER_NAME)) as unknown as string[][]
    const ready = replicas.filter((fields) => {
      const field = (name: string) => fields[fields.indexOf(name) + 1]
      return field('flags') === 'slave' && field('master-link-status') === 'ok'
    })
    return ready.length === this.servers.length - 1
  }

  private async ask(...args: string[]): Promise<string[]> {
    return (await this.sentinel.ask((client) => client.call('SENTINEL', ...args))) as string[]
  }
}
