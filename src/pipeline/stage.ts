/**
 * A pipeline stage and how an ordered list of them becomes the `ProxyHooks` the tunnel runs.
 * Stages pass typed verdicts to each other (`PolicyVerdict`: the decision and approval as named
 * fields, a `hold` for a statement that needs approval); the proxy only ever sees allow or reject.
 */
import type {PolicyVerdict} from '../policy/index.js'
import type {ProxyHooks, StatementContext, StatementHook, StatementVerdict} from '../proxy/seam.js'

/**
 * The stages, in the order they run, for every part of the seam they share:
 * - identity first: every later stage judges, masks and records as the identity it establishes.
 * - policy before approvals: only policy says what needs approval (a `hold`); the read-only agent
 *   rule is part of policy, so an agent's write is refused before it could be filed for approval.
 * - approvals before masking: a hold is settled (allow-once or reject) before any later stage or
 *   the proxy sees it, and an approved statement gets masking's checks like any allowed one.
 * - masking after policy and approvals: its catalog freshness and traceability checks run only
 *   for a statement that is going to run, and never hold up one that is refused.
 * - recording last: it sees every statement's final outcome, with the decision and approval that
 *   led to it, and after masking, so it records only what the client was shown.
 * Resources are released in the reverse order (recording flushes before masking's catalog closes).
 */
export const STAGE_ORDER = ['identity', 'policy', 'approvals', 'masking', 'recording'] as const
export type StageName = (typeof STAGE_ORDER)[number]

/**
 * A stage's part in judging a statement: it gets the verdict of the stages before it and returns
 * the verdict so far. Synchronous unless it must wait (a catalog read, an approval).
 */
export type StatementStep = (sql: string, ctx: StatementContext, verdict: PolicyVerdict) => PolicyVerdict | Promise<PolicyVerdict>

/**
 * A stage's last word on a statement the whole pipeline judged, just before the proxy acts on it:
 * it may wait, refuse, or have it judged again from the start (`again`).
 */
export interface Admission {
  /** A number read as the statement's judgement begins, handed back to `admit` when it ended asynchronously. */
  epoch(): number
  /**
   * `began` is `epoch()` as the judgement began when the verdict came asynchronously (the proxy
   * then acts on it later in the same turn of the event loop), undefined when it came at once.
   */
  admit(
    sql: string,
    ctx: StatementContext,
    verdict: StatementVerdict,
    began: number | undefined,
    /** The whole pipeline's judgement, to have `sql` judged again (with the session as it is then). */
    again: StatementHook,
  ): StatementVerdict | Promise<StatementVerdict>
  /** `ProxyHooks.commitPoint`: a Sync or Execute that may commit what the session sent before it. */
  commitPoint?: ProxyHooks['commitPoint']
  /** `ProxyHooks.awaited`: other sessions wait on what the connection runs. */
  awaited?: ProxyHooks['awaited']
}

/** One stage: its name and the parts of the proxy's seam it implements. */
export interface Stage {
  readonly name: StageName
  readonly startup?: ProxyHooks['startup']
  readonly assumedSettings?: ProxyHooks['assumedSettings']
  readonly statement?: StatementStep
  /** The stage's last word on every verdict, just before the proxy acts on it. */
  readonly admit?: Admission
  readonly verdictGeneration?: ProxyHooks['verdictGeneration']
  readonly resultFilter?: ProxyHooks['resultFilter']
  /** The result filter's output memory (with `resultFilter`). */
  readonly outputMemory?: ProxyHooks['outputMemory']
  readonly onSessionStart?: ProxyHooks['onSessionStart']
  readonly onStatement?: ProxyHooks['onStatement']
  readonly onIdle?: ProxyHooks['onIdle']
  readonly beforeRelease?: ProxyHooks['beforeRelease']
  readonly logFull?: ProxyHooks['logFull']
  readonly onRowsReleased?: ProxyHooks['onRowsReleased']
  readonly recordEvent?: ProxyHooks['recordEvent']
  readonly onSessionEnd?: ProxyHooks['onSessionEnd']
  readonly onConnectionClosed?: ProxyHooks['onConnectionClosed']
  readonly onUpstreamClosed?: ProxyHooks['onUpstreamClosed']
  readonly previewRows?: number
  readonly dispose?: () => Promise<void>
}

/** The pipeline as a value: its stages in `STAGE_ORDER`, and what they share. */
export interface Pipeline {
  readonly stages: readonly Stage[]
  /** Releases what the stages share (the catalog connection), after every stage has been disposed. */
  release(): Promise<void>
}

/** Where a statement's judgement starts: the first stage to judge (policy) decides from here. */
const ALLOW: StatementVerdict = Object.freeze({action: 'allow' as const})

/**
 * A hold no stage settled is refused, with the message policy wrote for it (fail closed): the
 * proxy must never run a statement that needs approval.
 */
export function refuseHold(v: PolicyVerdict): StatementVerdict {
  return v.action === 'hold' ? {action: 'reject', error: v.error, decision: v.decision, analysis: v.analysis} : v
}

/** The hooks the proxy runs for `pipeline`: each part of the seam calls its stages in `STAGE_ORDER`. */
export function assemble(pipeline: Pipeline): ProxyHooks {
  const stages = inOrder(pipeline.stages)
  const filters = stages.filter((s) => s.resultFilter)
  // Results are rewritten by one filter; two would each need to see the other's output.
  if (filters.length > 1) throw new Error(`pipeline: only one stage may filter results (${filters.map((s) => s.name).join(', ')} do)`)
  const previews = stages.filter((s) => s.previewRows !== undefined)
  if (previews.length > 1) throw new Error(`pipeline: only one stage may keep previews (${previews.map((s) => s.name).join(', ')} do)`)
  const all = <K extends keyof Stage>(key: K): NonNullable<Stage[K]>[] => {
    const parts: NonNullable<Stage[K]>[] = []
    for (const s of stages) {
      const part = s[key]
      if (part != null) parts.push(part)
    }
    return parts
  }
  return {
    startup: firstProblem(all('startup')),
    assumedSettings: all('assumedSettings').flat(),
    statement: judgeInTurn(all('statement'), all('admit')),
    commitPoint: all('admit')[0]?.commitPoint,
    awaited: all('admit')[0]?.awaited,
    verdictGeneration: sumOf(all('verdictGeneration')),
    resultFilter: filters[0]?.resultFilter,
    outputMemory: filters[0]?.outputMemory,
    onSessionStart: inTurn(all('onSessionStart')),
    onStatement: inTurn(all('onStatement')),
    onIdle: inTurn(all('onIdle')),
    onRowsReleased: inTurn(all('onRowsReleased')),
    beforeRelease: everyFirstProblem(all('beforeRelease')),
    logFull: firstProblem(all('logFull')),
    // One log per session: the first stage that keeps one records it.
    recordEvent: all('recordEvent')[0],
    onSessionEnd: inTurn(all('onSessionEnd')),
    onConnectionClosed: inTurn(all('onConnectionClosed')),
    onUpstreamClosed: inTurn(all('onUpstreamClosed')),
    previewRows: previews[0]?.previewRows ?? 0,
    dispose: async () => {
      for (const s of [...stages].reverse()) await s.dispose?.()
      await pipeline.release()
    },
  }
}

function inOrder(stages: readonly Stage[]): readonly Stage[] {
  let last = -1
  for (const s of stages) {
    const at = STAGE_ORDER.indexOf(s.name)
    if (at <= last) throw new Error(`pipeline: stage ${s.name} is out of order (the order is ${STAGE_ORDER.join(', ')}, each at most once)`)
    last = at
  }
  return stages
}

/** The statement hook: each step in turn, synchronously as long as every step answers at once; then each stage's `admit`. */
function judgeInTurn(steps: StatementStep[], admits: Admission[]): StatementHook | undefined {
  if (steps.length === 0) return undefined
  let judged = (sql: string, ctx: StatementContext): PolicyVerdict | Promise<PolicyVerdict> => steps[0]!(sql, ctx, ALLOW)
  for (const step of steps.slice(1)) {
    const before = judged
    judged = (sql, ctx) => {
      const v = before(sql, ctx)
      return v instanceof Promise ? v.then((r) => step(sql, ctx, r)) : step(sql, ctx, v)
    }
  }
  const all = judged
  if (admits.length > 1) throw new Error('pipeline: only one stage may admit statements')
  const admit = admits[0]
  if (!admit) {
    return (sql, ctx) => {
      const v = all(sql, ctx)
      return v instanceof Promise ? v.then(refuseHold) : refuseHold(v)
    }
  }
  const hook: StatementHook = (sql, ctx) => {
    const began = admit.epoch()
    const v = all(sql, ctx)
    return v instanceof Promise ? v.then((r) => admit.admit(sql, ctx, refuseHold(r), began, hook)) : admit.admit(sql, ctx, refuseHold(v), undefined, hook)
  }
  return hook
}

/** One number that changes when any stage's does. */
function sumOf(fns: (() => number)[]): (() => number) | undefined {
  if (fns.length <= 1) return fns[0]
  return () => fns.reduce((n, f) => n + f(), 0)
}

function inTurn<A extends unknown[]>(fns: ((...args: A) => void)[]): ((...args: A) => void) | undefined {
  if (fns.length <= 1) return fns[0]
  return (...args: A) => {
    for (const f of fns) f(...args)
  }
}

/** Every part runs (each writes what it must), and the first problem any of them found is the answer. */
function everyFirstProblem<A extends unknown[], R>(fns: ((...args: A) => R | undefined)[]): ((...args: A) => R | undefined) | undefined {
  if (fns.length <= 1) return fns[0]
  return (...args: A) => {
    let first: R | undefined
    for (const f of fns) {
      const problem = f(...args)
      if (first === undefined) first = problem
    }
    return first
  }
}

function firstProblem<A extends unknown[], R>(fns: ((...args: A) => R | undefined)[]): ((...args: A) => R | undefined) | undefined {
  if (fns.length <= 1) return fns[0]
  return (...args: A) => {
    for (const f of fns) {
      const problem = f(...args)
      if (problem !== undefined) return problem
    }
    return undefined
  }
}
