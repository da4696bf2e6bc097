/**
 * What a reload (SIGHUP) of the gateway applies, and what it reads at start only. A reload applies
 * the targets (their policies, `allow`, rules, masking, approvals, reviewers and tunnel settings) and
 * the TLS files. Everything else in gateway.yaml is read when the process starts, so a change to it
 * is named in a warning: an operator who tightens `server.sessionOutlivesToken`,
 * `server.maxSessionDuration` or `server.mcp.allowedOrigins`, or moves `bucket`, and reloads must not
 * believe it in force while the gateway goes on with the old value.
 *
 * What applies is an allow-list: a setting added to the file later is reported until a reload
 * applies it, rather than ignored without a word.
 */
import type {DbgateConfig} from '../config/types.js'

/** Top-level sections a reload applies. */
const APPLIED = new Set(['targets'])

/** Settings of `server` a reload applies. */
const SERVER_APPLIED = new Set(['tls'])

/** Settings of `server` whose parsed name is not the one gateway.yaml spells. */
const SERVER_NAMES: Record<string, string> = {
  maxSessionDurationMs: 'maxSessionDuration',
  pipelineIdleMs: 'pipelineIdle',
  signInTimeoutMs: 'signInTimeout',
  drainTimeoutMs: 'drainTimeout',
  logLevel: 'log.level',
}

/**
 * What the gateway's own listener reads of the `tunnel` defaults, by the name gateway.yaml spells.
 * The rest of `tunnel` is the targets' defaults, applied with the targets.
 */
const LISTENER_TUNNEL: Record<string, string> = {authTimeoutMs: 'authTimeout', maxMessageSize: 'maxMessageSize'}

type Section = Record<string, unknown> | undefined

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)
const keysOf = (a: Section, b: Section): string[] => [...new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})])]

/** The settings, as gateway.yaml names them, that differ between the two and that a reload does not apply. */
export function changedUntilRestart(running: DbgateConfig, next: DbgateConfig): string[] {
  const [was, now] = [running as Record<string, unknown>, next as Record<string, unknown>]
  const out: string[] = []
  for (const key of keysOf(was, now)) {
    if (APPLIED.has(key)) continue
    const [a, b] = [was[key] as Section, now[key] as Section]
    if (key === 'server') {
      for (const k of keysOf(a, b)) if (!SERVER_APPLIED.has(k) && !same(a?.[k], b?.[k])) out.push(`server.${SERVER_NAMES[k] ?? k}`)
    } else if (key === 'tunnel') {
      for (const [k, name] of Object.entries(LISTENER_TUNNEL)) if (!same(a?.[k], b?.[k])) out.push(`tunnel.${name}`)
    } else if (!same(a, b)) {
      out.push(key)
    }
  }
  return out
}
