import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { Cluster } from 'ioredis'
import { freePort, portIsFree, RedisServer } from './redis-server.js'
import { type Certificates, tlsPortArgs } from './tls.js'

const run = promisify(execFile)

/** A free port whose cluster bus port (port + 10000) is free too. */
async function clusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort()
    if (port + 10_000 <= 65_535 && (await portIsFree(port + 10_000))) return port
  }
}

const CLUSTER_NODE_ARGS = [
  '--cluster-enabled',
  'yes',
  '--cluster-config-file',
  'nodes.conf',
  '--cluster-node-timeout',
  '2000',
  // A replica's first sync would wait 5 s for others to share it.
  '--repl-diskless-sync-delay',
  '0',
]

/**
 * A real local Redis Cluster of `masters` redis-server processes (and `replicas` for each),
 * created with `redis-cli --cluster create`; every slot is served once `cluster_state:ok`.
 */
export class RedisCluster {
  private constructor(
    /** The masters. */
    readonly nodes: RedisServer[],
    readonly replicas: RedisServer[] = [],
    /** Each node's TLS port by its plain one, when the cluster has TLS. */
    private readonly tlsPorts = new Map<number, number>(),
  ) {}

  /**
   * With `tls`, every node also serves TLS on a port of its own (client certificates required)
   * and the nodes talk TLS among themselves; the plain ports stay for the tests' own looks.
   * `nodeArgs` are more `redis-server` arguments for every node.
   */
  static async start(
    masters = 3,
    {
      replicas = 0,
      tls,
      nodeArgs = [],
    }: { replicas?: number; tls?: Certificates; nodeArgs?: string[] } = {},
  ): Promise<RedisCluster> {
    const nodes: RedisServer[] = []
    const tlsPorts = new Map<number, number>()
    try {
      for (let i = 0; i < masters * (1 + replicas); i++) {
        const port = await clusterPort()
        // With `--tls-cluster yes` the bus listens at the TLS port + 10000.
        const tlsPort = tls ? await clusterPort() : 0
        if (tls) tlsPorts.set(port, tlsPort)
        nodes.push(
          await RedisServer.start({
            port,
            args: [
              ...(tls ? [...tlsPortArgs(tls, tlsPort), '--tls-cluster', 'yes'] : []),
              ...CLUSTER_NODE_ARGS,
              ...nodeArgs,
            ],
          }),
        )
      }
      await run('redis-cli', [
        '--cluster',
        'create',
        ...nodes.map((node) => `127.0.0.1:${node.port}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ])
      await new RedisCluster(nodes).waitUntilOk()
      const roles = await Promise.all(nodes.map((node) => node.ask((client) => client.role())))
      const cluster = new RedisCluster(
        nodes.filter((_, index) => roles[index]?.[0] === 'master'),
        nodes.filter((_, index) => roles[index]?.[0] === 'slave'),
        tlsPorts,
      )
      await Promise.all(cluster.nodes.map((node) => node.waitForReplicas(replicas)))
      return cluster
    } catch (error) {
      // No cluster for the caller to destroy: stop its nodes here.
      await Promise.all(nodes.map((node) => node.destroy()))
      throw error
    }
  }

  /** The master serving `key`'s slot and its replicas. */
  async serversOf(key: string): Promise<{ master: RedisServer; replicas: RedisServer[] }> {
    const node = this.nodes[0] as RedisServer
    const slot = Number(await node.ask((client) => client.cluster('KEYSLOT', key)))
    const ranges = (await node.ask((client) => client.cluster('SLOTS'))) as unknown as [
      number,
      number,
      [string, number],
    ][]
    const range = ranges.find(([first, last]) => slot >= first && slot <= last)
    const master = this.nodes.find((server) => server.port === range?.[2][1])
    if (!master) throw new Error(`no master serves slot ${slot}`)
    // Gossip lists a new replica in CLUSTER SLOTS only after a while; the replica knows at once.
    const followed = await Promise.all(
      this.replicas.map((replica) => replica.ask((client) => client.info('replication'))),
    )
    const replicas = this.replicas.filter((_, index) =>
      followed[index]?.includes(`master_port:${master.port}\r\n`),
    )
    return { master, replicas }
  }

  /** `host:port,…`, the gateway's REDIS_CLUSTER_NODES and the worker's --cluster. */
  get seeds(): string {
    return this.nodes.map((node) => `127.0.0.1:${node.port}`).join(',')
  }

  /** The masters' TLS ports as seeds, for a cluster started with `tls`. */
  get tlsSeeds(): string {
    return this.tlsSeedsAt('127.0.0.1')
  }

  /** The masters' TLS ports as seeds on `host` (a name such as `localhost`, say). */
  tlsSeedsAt(host: string): string {
    return this.nodes.map((node) => `${host}:${this.tlsPorts.get(node.port)}`).join(',')
  }

  private async waitUntilOk(): Promise<void> {
    const deadline = Date.now() + 20_000
    for (;;) {
      const states = await Promise.all(
        this.nodes.map(async (node) =>
          /cluster_state:ok/.test(String(await node.ask((client) => client.cluster('INFO')))),
        ),
      )
      if (states.every(Boolean)) return
      if (Date.now() > deadline) throw new Error('the cluster did not reach cluster_state:ok')
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  client(): Cluster {
    return new Cluster(
      this.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
      { redisOptions: { maxRetriesPerRequest: 1 } },
    )
  }

  /** Every key on every node, and which node holds it. */
  async keysByNode(): Promise<Map<number, string[]>> {
    const byNode = new Map<number, string[]>()
    for (const node of this.nodes) {
      byNode.set(node.port, (await node.ask((client) => client.keys('*'))).sort())
    }
    return byNode
  }

  /** A new master serving no slot yet (no TLS), known to every node; stopped by destroy(). */
  async addEmptyMaster(): Promise<RedisServer> {
    const node = await RedisServer.start({ port: await clusterPort(), args: CLUSTER_NODE_ARGS })
    this.nodes.push(node)
    await node.ask((client) => client.cluster('MEET', '127.0.0.1', this.nodes[0]?.port ?? 0))
    const id = String(await node.ask((client) => client.cluster('MYID')))
    for (const deadline = Date.now() + 20_000; ; ) {
      const known = await Promise.all(
        this.nodes.map(async (other) =>
          String(await other.ask((client) => client.cluster('NODES'))).includes(id),
        ),
      )
      const ok = /cluster_state:ok/.test(String(await node.ask((client) => client.cluster('INFO'))))
      if (ok && known.every(Boolean)) return node
      if (Date.now() > deadline) throw new Error('the new node did not join the cluster')
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  /**
   * Moves `key`'s slot, with its keys, to `to` as `redis-cli --cluster reshard` does (IMPORTING,
   * MIGRATING, MIGRATE, then the new owner told to every node). For `keysMovedMs` between the
   * last MIGRATE and the new owner, calls on the slot's keys are answered ASK.
   */
  async moveSlotOf(key: string, to: RedisServer, keysMovedMs = 0): Promise<void> {
    const { master: from } = await this.serversOf(key)
    const slot = Number(await from.ask((client) => client.cluster('KEYSLOT', key)))
    const idOf = async (node: RedisServer) =>
      String(await node.ask((client) => client.cluster('MYID')))
    const [fromId, toId] = [await idOf(from), await idOf(to)]
    await to.ask((client) => client.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId))
    await from.ask((client) => client.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId))
    for (;;) {
      const keys = (await from.ask((client) =>
        client.cluster('GETKEYSINSLOT', slot, 100),
      )) as unknown as string[]
      if (keys.length === 0) break
      await from.ask((client) =>
        client.call('MIGRATE', '127.0.0.1', to.port, '', 0, 5000, 'KEYS', ...keys),
      )
    }
    await new Promise((resolve) => setTimeout(resolve, keysMovedMs))
    for (const node of this.nodes) {
      await node.ask((client) => client.call('CLUSTER', 'SETSLOT', slot, 'NODE', toId))
    }
  }

  async flush(): Promise<void> {
    for (const node of this.nodes) await node.ask((client) => client.flushall())
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.nodes, ...this.replicas].map((node) => node.destroy()))
  }
}
