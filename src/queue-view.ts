import { iso } from './job-view.js'
import type { QueueCounts } from './queue/queue-store.js'

/** The running totals of a queue's stats hash, as its view and the metrics show them. */
export const QUEUE_COUNTERS = [
  'enqueued',
  'succeeded',
  'retried',
  'dead',
  'expired',
  'canceled',
  'reclaimed',
  'released',
  'redriven',
  'purged',
] as const

const MINUTE = 60_000

/**
 * The `QueueSummary` of openapi.yaml. Throughput over the last 60 s is estimated from two
 * per-minute counters: all of this minute plus the share of last minute still inside the window.
 */
export function queueSummaryView(counts: QueueCounts) {
  const stillInWindow = 1 - (counts.now % MINUTE) / MINUTE
  const lastSixtySeconds = (field: string) =>
    Math.round((counts.thisMinute[field] ?? 0) + (counts.lastMinute[field] ?? 0) * stillInWindow)
  return {
    name: counts.name,
    counts: {
      queued: counts.queued,
      scheduled: counts.scheduled,
      active: counts.active,
      dead: counts.dead,
    },
    oldest_queued_at: counts.oldestQueuedAt === null ? null : iso(counts.oldestQueuedAt),
    oldest_queued_age_ms:
      counts.oldestQueuedAt === null ? null : Math.max(0, counts.now - counts.oldestQueuedAt),
    paused: counts.pausedAt !== null,
    paused_at: counts.pausedAt === null ? null : iso(counts.pausedAt),
    totals: Object.fromEntries(QUEUE_COUNTERS.map((field) => [field, counts.totals[field] ?? 0])),
    throughput: {
      window_s: 60,
      enqueued: lastSixtySeconds('enqueued'),
      succeeded: lastSixtySeconds('succeeded'),
      retried: lastSixtySeconds('retried'),
      dead: lastSixtySeconds('dead'),
    },
  }
}
