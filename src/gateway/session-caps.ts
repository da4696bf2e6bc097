/**
 * Counts of what one party holds on the gateway's PostgreSQL listener at once, each under a cap:
 * sessions per signed-in person (server.maxSessionsPerPerson) and connections not yet signed in,
 * in all and per source address (server.maxPendingSignIns, server.maxPendingSignInsPerAddress; an
 * IPv6 address counts by its /64).
 */
import {isIPv6} from 'node:net'
import {mailbox} from '../identity/types.js'
import type {SessionGate} from '../proxy/upstream-gate.js'
import {UpstreamError} from '../proxy/upstream.js'

/** One person's key in the per-person slots: the verified issuer and subject, never a name the client chose. */
export function personKey(identity: {issuer: string; subject: string}): string {
  return `${identity.issuer}\n${identity.subject}`
}

/**
 * Every key a person's session counts under, each capped: their subject, and the verified mailbox
 * it proves. One person holds several subjects at one IdP (Entra ID's `sub` is pairwise, one per
 * client application: dbgate's CLI, a CI client, an agent platform's; linked accounts sharing a
 * mailbox), as `samePerson` knows; counted by subject alone, each would bring a cap of its own.
 * Folding two people into one here only ever refuses more.
 */
export function personKeys(identity: {issuer: string; subject: string; email?: string}): string[] {
  const keys = [personKey(identity)]
  // A JSON array: no subject key (the issuer's URL first) can spell it.
  if (identity.email !== undefined) keys.push(JSON.stringify(['mailbox', identity.issuer, mailbox(identity.email)]))
  return keys
}

/**
 * The share a source address counts against: an IPv4 address (an IPv4-mapped IPv6 one too) as
 * itself, an IPv6 address by its /64 prefix. One host is usually given a whole /64, and picks a new
 * address in it at will (privacy addresses), so counting whole IPv6 addresses gives it no cap.
 */
export function addressShare(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped) return mapped[1]!
  if (!isIPv6(address)) return address
  const [head = '', tail = ''] = address.replace(/%.*$/, '').split('::')
  const left = head ? head.split(':') : []
  const right = tail ? tail.split(':') : []
  // An embedded IPv4 tail (`::1.2.3.4`) takes two groups; it sits in the low 64 bits, which are dropped.
  const width = (groups: string[]) => groups.reduce((n, g) => n + (g.includes('.') ? 2 : 1), 0)
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - width(left) - width(right)).fill('0'), ...right] : left
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`
}

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

  /** A slot under each of `keys` together, or undefined (and none taken) when any of them holds `max`. */
  takeAll(keys: readonly string[]): (() => void) | undefined {
    const taken: (() => void)[] = []
    for (const key of keys) {
      const release = this.take(key)
      if (!release) {
        for (const r of taken) r()
        return undefined
      }
      taken.push(release)
    }
    return () => {
      for (const r of taken) r()
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
    const mine = this.perAddress.take(addressShare(address))
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

/**
 * `gate` (a target's budget) behind one person's share of `slots`: the database sessions a remote
 * MCP session opens count with the person's PostgreSQL sessions, so spreading them over several MCP
 * sessions and parallel calls cannot take a target's whole budget. The person's slot is taken first
 * and at once (never queued, as a sign-in past the cap is refused), and given back with the budget's,
 * when the server has ended the session.
 */
export function personBoundGate(gate: SessionGate, slots: CountedSlots, person: {keys: readonly string[]; label: string}): SessionGate {
  return {
    get inUse() {
      return gate.inUse
    },
    get queued() {
      return gate.queued
    },
    async acquire(signal) {
      const mine = slots.takeAll(person.keys)
      if (!mine) {
        throw new UpstreamError(`too many sessions: ${person.label} already has ${slots.max} session(s) open on this gateway, its cap per person (server.maxSessionsPerPerson); an agent's MCP sessions count with the person's others`, '53300')
      }
      let budget: () => void
      try {
        budget = await gate.acquire(signal)
      } catch (error) {
        mine()
        throw error
      }
      return () => {
        budget()
        mine()
      }
    },
  }
}
