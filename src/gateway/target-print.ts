import {createHash} from 'node:crypto'
import type {TargetConfig} from '../config/types.js'

/** What a session on a target was started under: its settings and the policy resolved for it. */
export interface PrintedTarget {
  config: TargetConfig
  policy: {hash: string}
}

/** Each served target's print, by the object a reload replaces (so it is hashed once per reload). */
const prints = new WeakMap<TargetConfig, {hash: string; print: string}>()

/**
 * A digest of a served target's settings and resolved policy: equal across a reload that changed
 * neither, so sessions started before it can tell whether they still run what is configured.
 */
export function targetPrint(served: PrintedTarget): string {
  const known = prints.get(served.config)
  if (known?.hash === served.policy.hash) return known.print
  const print = createHash('sha256').update(JSON.stringify([served.policy.hash, served.config])).digest('hex')
  prints.set(served.config, {hash: served.policy.hash, print})
  return print
}
