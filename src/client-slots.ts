/**
 * A count of what each client holds (streams, say), capped per client. `take` hands out a
 * release that gives the slot back once, however often it is called.
 */
export class ClientSlots {
  private readonly held = new Map<string, number>()

  constructor(readonly perClient: number) {}

  heldBy(client: string): number {
    return this.held.get(client) ?? 0
  }

  /** A slot for `client`, or null when it holds `perClient` already. */
  take(client: string): (() => void) | null {
    const held = this.heldBy(client)
    if (held >= this.perClient) return null
    this.held.set(client, held + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = this.heldBy(client) - 1
      if (left > 0) this.held.set(client, left)
      else this.held.delete(client)
    }
  }
}
