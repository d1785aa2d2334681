/**
 * The Redis key layout. Every key of one queue carries the queue's hash tag, so each script
 * touches a single cluster slot: `<prefix>:{<queue>}:<part>`.
 */

export class QueueKeys {
  /** `<prefix>:{<queue>}:`, the stem every key of this queue starts with. */
  readonly base: string
  readonly scheduled: string
  readonly active: string
  readonly dead: string
  readonly events: string
  readonly wake: string
  readonly paused: string
  readonly stats: string
  /** Written before a `WAIT` for replicas (see ReplicaBarrier); holds a counter, nothing else. */
  readonly barrier: string

  constructor(
    readonly prefix: string,
    readonly queue: string,
  ) {
    this.base = `${prefix}:{${queue}}:`
    this.scheduled = `${this.base}scheduled`
    this.active = `${this.base}active`
    this.dead = `${this.base}dead`
    this.events = `${this.base}events`
    this.wake = `${this.base}wake`
    this.paused = `${this.base}paused`
    this.stats = `${this.base}stats`
    this.barrier = `${this.base}barrier`
  }

  /** The Redis Cluster slot of every key of the queue (its hash tag is the queue's name). */
  get slot(): number {
    return clusterSlot(this.queue)
  }

  job(id: string): string {
    return `${this.base}job:${id}`
  }

  ready(priority: number): string {
    return `${this.base}ready:${priority}`
  }

  idempotency(client: string, key: string): string {
    return `${this.base}idem:${client}:${key}`
  }
}

/** The set of queue names: with the rate-limit counters, the only keys outside a queue's slot. */
export function registryKey(prefix: string): string {
  return `${prefix}:queues`
}

/** Redis Cluster's slot of a hash tag: CRC16 (XMODEM) of its bytes, modulo 16384. */
export function clusterSlot(tag: string): number {
  let crc = 0
  for (const byte of Buffer.from(tag)) {
    crc ^= byte << 8
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    }
  }
  return crc % 16384
}
