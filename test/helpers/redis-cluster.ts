import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { Cluster } from 'ioredis'
import { freePort, portIsFree, RedisServer } from './redis-server.js'

const run = promisify(execFile)

/** A free port whose cluster bus port (port + 10000) is free too. */
async function clusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort()
    if (port + 10_000 <= 65_535 && (await portIsFree(port + 10_000))) return port
  }
}

/**
 * A real local Redis Cluster of `masters` redis-server processes (no replicas), created with
 * `redis-cli --cluster create`; every slot is served once `cluster_state:ok`.
 */
export class RedisCluster {
  private constructor(readonly nodes: RedisServer[]) {}

  static async start(masters = 3): Promise<RedisCluster> {
    const nodes: RedisServer[] = []
    for (let i = 0; i < masters; i++) {
      nodes.push(
        await RedisServer.start({
          port: await clusterPort(),
          args: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            '2000',
          ],
        }),
      )
    }
    const cluster = new RedisCluster(nodes)
    await run('redis-cli', [
      '--cluster',
      'create',
      ...nodes.map((node) => `127.0.0.1:${node.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ])
    await cluster.waitUntilOk()
    return cluster
  }

  /** `host:port,…`, the gateway's REDIS_CLUSTER_NODES and the worker's --cluster. */
  get seeds(): string {
    return this.nodes.map((node) => `127.0.0.1:${node.port}`).join(',')
  }

  private async waitUntilOk(): Promise<void> {
    const deadline = Date.now() + 20_000
    for (;;) {
      const states = await Promise.all(
        this.nodes.map(async (node) => {
          const client = node.client()
          try {
            return /cluster_state:ok/.test(String(await client.cluster('INFO')))
          } finally {
            client.disconnect()
          }
        }),
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
      const client = node.client()
      try {
        byNode.set(node.port, (await client.keys('*')).sort())
      } finally {
        client.disconnect()
      }
    }
    return byNode
  }

  async flush(): Promise<void> {
    for (const node of this.nodes) {
      const client = node.client()
      try {
        await client.flushall()
      } finally {
        client.disconnect()
      }
    }
  }

  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.destroy()))
  }
}
