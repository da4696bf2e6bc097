/**
 * Which signing keys an auditor trusts. Without a list every published key counts (each key still
 * has to be bound to the identity of the sessions it signs). With one (`--signer`, or
 * `recording.trustedSigners` in the configuration), a session verifies only when every signature in
 * it comes from a named key: so a key from a laptop, even one correctly published in the bucket,
 * cannot pass for the gateway's.
 *
 * A signer is named by key id (the 32 hex digits of `keys/<key-id>.json`) or, for a gateway's key,
 * by the gateway's name. A key id is the stronger name: it is derived from the key itself, whereas a
 * name is whatever the published document says, so trusting a name trusts every key that anyone able
 * to write the bucket's `keys/` publishes under it.
 */
import type {KeyRing, PublishedKey} from './signing.js'

export interface SignerTrust {
  /** The names as given, for messages. */
  readonly names: readonly string[]
  trusts(key: PublishedKey): boolean
}

const KEY_ID = /^[0-9a-f]{32}$/i

/** `--signer` replaces the configured list (an auditor's choice for one run); undefined: trust every published key. */
export function signerTrust(fromFlags: readonly string[] | undefined, fromConfig: readonly string[] | undefined): SignerTrust | undefined {
  const names = [...new Set((fromFlags?.length ? fromFlags : fromConfig ?? []).map((n) => n.trim()).filter(Boolean))]
  if (names.length === 0) return undefined
  const keyIds = new Set(names.filter((n) => KEY_ID.test(n)).map((n) => n.toLowerCase()))
  const gateways = new Set(names)
  return {
    names,
    trusts: (key) => keyIds.has(key.keyId.toLowerCase()) || (key.signer?.kind === 'gateway' && gateways.has(key.signer.name)),
  }
}

/** Who a key speaks for, for messages: `key 9f1c… (gateway gw-eu)` or `key 9f1c… (alice@example.com on laptop-7)`. */
export function describeKey(key: PublishedKey): string {
  if (key.signer) return `key ${key.keyId} (gateway ${key.signer.name})`
  return `key ${key.keyId} (${key.identity?.email ?? key.identity?.subject ?? 'unbound'} on ${key.host})`
}

/** Named signers that match no key in the ring: most likely a typo, said before verifying. */
export function unmatchedSigners(trust: SignerTrust, keys: KeyRing): string[] {
  return trust.names.filter((name) => ![...keys.values()].some((k) => signerTrust([name], undefined)!.trusts(k)))
}
