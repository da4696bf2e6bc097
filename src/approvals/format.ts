/** Words and numbers for requests, shared by the CLI lists and the TUI. */
import type {ApprovalRequest, RequestView} from './types.js'
import {requesterLabel} from './types.js'
import {agentLabel} from '../identity/types.js'
import {visible} from '../util/visible.js'

/** `45s`, `3m`, `2h05m`. */
export function shortDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m${s % 60 ? String(s % 60).padStart(2, '0') + 's' : ''}`
  const h = Math.floor(m / 60)
  return `${h}h${String(m % 60).padStart(2, '0')}m`
}

export interface RequestRow {
  id: string
  requester: string
  target: string
  class: string
  age: string
  left: string
  state: string
  sql: string
}

export function requestRow(v: RequestView, now: Date): RequestRow {
  const r = v.request
  return {
    id: r.id,
    // An agent's request names the agent and the person it acts for, so nobody mistakes one for the other.
    requester: r.agent ? `${requesterLabel(r.requester)} via ${visible(agentLabel(r.agent))}` : requesterLabel(r.requester),
    target: r.target,
    class: r.class,
    age: shortDuration(now.getTime() - Date.parse(r.createdAt)),
    left: v.state === 'pending' ? shortDuration(Date.parse(r.expiresAt) - now.getTime()) : '-',
    state: v.state,
    // Escaped before the blanks are folded, so a CR or a vertical tab shows as itself rather than a space.
    sql: visible(r.sql).replace(/\s+/g, ' ').trim() + (r.params ? ` ${boundValues(r.params, r.paramTypes)}` : ''),
  }
}

/** The values a request held at its Bind runs with, as a reviewer reads them: `[$1 = 'mallory', $2 = NULL]`, escaped. */
export function boundValues(params: readonly (string | null)[], types?: readonly string[]): string {
  if (params.length === 0) return '[no values]'
  const typed = (i: number) => (types?.[i] ? ` (declared ${visible(types[i])})` : '')
  return `[${params.map((v, i) => `$${i + 1}${typed(i)} = ${v === null ? 'NULL' : `'${visible(v).replace(/'/g, "''")}'`}`).join(', ')}]`
}

/** One line per statement for the webhook and the tunnel's log. */
export function oneLine(sql: string, max = 120): string {
  // Both go to a reader (a terminal, a chat): nothing in the client's text may act on it.
  const s = visible(sql.replace(/\s+/g, ' ').trim())
  return s.length > max ? `${s.slice(0, max - 1)}…` : s
}

/** Stands in for a line break that ends a `--` comment while the rest of the blanks are folded. */
const COMMENT_END = '\uE000'

/**
 * A statement on one line, for the webhook, the tunnel's terminal and the list of what ran before:
 * blanks folded, except a line break after `--`, shown as `\x0a`. That break ends the comment and
 * what follows it runs; folded into a space, `select 1 -- check` and the `alter table …` on the next
 * line would read as one comment. (A `--` inside a string keeps its break too: shown, harmlessly.)
 */
export function oneLineSql(sql: string, max = 120): string {
  const kept = sql.replace(/\uE000/g, '\uFFFD').replace(/(--[^\r\n]*)(?:\r\n|\r|\n)/g, `$1${COMMENT_END}`)
  const s = visible(kept.replace(/\s+/g, ' ').trim()).replace(/\uE000 ?/g, '\\x0a ')
  return s.length > max ? `${s.slice(0, max - 1)}…` : s
}

const REFUSED = new Set(['deny', 'approval_denied', 'approval_timeout', 'approval_withdrawn'])

/** How an earlier statement of the session ended, for the reviewer: ran (✓), refused (✗) or failed (!). */
export function recentMark(s: {decision: string; outcome: string}): '✓' | '✗' | '!' {
  if (REFUSED.has(s.decision)) return '✗'
  return s.outcome === 'error' ? '!' : '✓'
}

/**
 * What the text runs that needs a reviewer, one line a part (`needs review: a trigger of audited
 * runs public.audit_dyn, which …`): a write's triggers, defaults and checks run code the text does
 * not show. A part that says no more than the request's rule line is left out. `r` is already visible.
 */
export function heldLines(r: Pick<ApprovalRequest, 'held' | 'ruleId' | 'reason'>): string[] {
  return (r.held ?? []).filter((h) => h.detail !== undefined || h.ruleId !== r.ruleId || h.reason !== r.reason).map((h) => `needs review (rule ${h.ruleId}): ${h.detail ?? h.reason}`)
}

/**
 * A request's settings on one line, `DateStyle = ISO, MDY · app.tenant = 7`. A value is the
 * session's to choose (`set app.note = 'x · role = admin'`): one holding the separator is quoted,
 * so it cannot pass for settings of its own.
 */
export function settingsLine(settings: Record<string, string>): string {
  return Object.entries(settings)
    .map(([k, v]) => `${k} = ${v.includes('·') || v !== v.trim() ? `'${v.replace(/'/g, "''")}'` : v}`)
    .join(' · ')
}
