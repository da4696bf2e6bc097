/**
 * Counts of what one party holds on the gateway's PostgreSQL listener at once, each under a cap:
 * sessions per signed-in person (server.maxSessionsPerPerson) and connections not yet signed in,
 * in all and per source address (server.maxPendingSignIns, server.maxPendingSignInsPerAddress).
 */

/** Holders counted by key, each key up to `max` at once. */
export class CountedSlots {
  private readonly held = new Map<string, number>()

  constructor(readonly max: number) {}

  /** A slot for `key`, or undefined when `key` already holds `max`. The release is idempotent. */
  take(key: string): (() => void) | undefined {
    const n = this.held.get(key) ?? 0
    if (n >= this.max) return undefined
    this.held.set(key, n + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.held.get(key) ?? 1) - 1
      if (left > 0) this.held.set(key, left)
      else this.held.delete(key)
    }
  }

  count(key: string): number {
    return this.held.get(key) ?? 0
  }
}

/**
 * Connections not signed in yet: a slot out of the listener's total and one out of the source
 * address's share, or the cap that refused it.
 */
export class PendingSignIns {
  private readonly all: CountedSlots
  private readonly perAddress: CountedSlots

  constructor(limits: {max: number; maxPerAddress: number}) {
    this.all = new CountedSlots(limits.max)
    this.perAddress = new CountedSlots(limits.maxPerAddress)
  }

  take(address: string): {ok: true; release: () => void} | {ok: false; cap: 'server.maxPendingSignIns' | 'server.maxPendingSignInsPerAddress'; max: number} {
    const mine = this.perAddress.take(address)
    if (!mine) return {ok: false, cap: 'server.maxPendingSignInsPerAddress', max: this.perAddress.max}
    const any = this.all.take('')
    if (!any) {
      mine()
      return {ok: false, cap: 'server.maxPendingSignIns', max: this.all.max}
    }
    return {
      ok: true,
      release: () => {
        mine()
        any()
      },
    }
  }
}
