/**
 * A strict reader of the Prometheus text exposition format: every line must be a comment
 * (`# HELP`, `# TYPE`) or a sample; anything else throws. Samples are keyed by
 * `name{label="value",…}` with labels sorted.
 */
// prom-client writes NaN as `Nan`; Prometheus reads floats case-insensitively, so both pass.
const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?(?:[0-9.eE+-]+|NaN|Nan|\+Inf|-Inf))(?: -?\d+)?$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g
const COMMENT = /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/

export function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    if (line.startsWith('#')) {
      if (!COMMENT.test(line)) throw new Error(`not a HELP/TYPE line: ${line}`)
      continue
    }
    const match = SAMPLE.exec(line)
    if (!match) throw new Error(`not a sample line: ${line}`)
    const labels = [...(match[2] ?? '').matchAll(LABEL)]
      .map(([, name, value]) => `${name}="${value}"`)
      .sort()
    const key = labels.length ? `${match[1]}{${labels.join(',')}}` : (match[1] as string)
    samples.set(key, Number(match[3]))
  }
  return samples
}

/** The sample's value, 0 when absent (a counter not yet incremented). */
export function sample(
  samples: Map<string, number>,
  name: string,
  labels: Record<string, string> = {},
): number {
  const parts = Object.entries(labels)
    .map(([label, value]) => `${label}="${value}"`)
    .sort()
  return samples.get(parts.length ? `${name}{${parts.join(',')}}` : name) ?? 0
}
