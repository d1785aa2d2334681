/**
 * How deeply a request body may nest arrays and objects (the body itself is level 1). Deeper
 * documents are refused before anything else looks at them: serialising one overflows the
 * stack, and a PHP worker decodes a payload only to 512 levels.
 */
export const MAX_JSON_DEPTH = 64

/** Whether `value` nests arrays and objects more than `max` levels deep; no recursion. */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]]
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [node, depth] = next
    if (node === null || typeof node !== 'object') continue
    if (depth > max) return true
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1])
    }
  }
  return false
}
