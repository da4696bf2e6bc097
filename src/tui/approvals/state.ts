/**
 * The approvals screen's state, kept apart from its view: a reducer (pure, tested through the
 * components) and a hook that wires it to loading, deciding and the refresh timer.
 */
import {useCallback, useEffect, useReducer, useRef} from 'react'
import type {DecideInput} from '../../approvals/review.js'
import type {RequestView} from '../../approvals/types.js'
import {requesterLabel} from '../../approvals/types.js'
import {requestDigest} from '../../approvals/store.js'

export type InputKind = 'filter' | 'reason' | 'approve' | 'window'

/** The request a decision is being typed for, as the reviewer read it: its id and its digest (requestDigest). */
export interface ReadRequest {
  id: string
  digest: string
}

export type Mode = {kind: 'browse'} | {kind: 'input'; input: InputKind; text: string; request?: ReadRequest} | {kind: 'busy'; label: string}

export interface Message {
  kind: 'ok' | 'error'
  text: string
}

export interface ApprovalsState {
  views: RequestView[]
  loaded: boolean
  /** Selection follows the request, not the row, so a refresh that adds rows keeps it in place. */
  selectedId?: string
  filter: string
  mode: Mode
  message?: Message
  loadError?: string
  /** Said while the screen is up (e.g. tokens went to a file): shown on it, never printed over it. */
  warnings: string[]
  /** The first row of the selected request's text on screen (it is paged), for the request it names. */
  scroll?: {id: string; top: number}
  /**
   * The rows of each request's text the reviewer has had on screen, in a frame that fit the
   * terminal, as sorted, disjoint [from, to) spans; by `readKey` (a changed request, or the same one
   * cut into rows for another width, is read afresh).
   */
  readRows: Record<string, [number, number][]>
}

export type Action =
  | {type: 'loaded'; views: RequestView[]}
  | {type: 'load-failed'; error: string}
  | {type: 'move'; delta: number}
  | {type: 'start-input'; input: InputKind; text?: string; request?: ReadRequest}
  | {type: 'type'; text: string}
  | {type: 'erase'}
  | {type: 'cancel-input'}
  | {type: 'apply-filter'; text: string}
  | {type: 'busy'; label: string}
  | {type: 'done'; message: Message}
  | {type: 'warn'; messages: string[]}
  /** Pages the selected request: its first row on screen is to be `top` (the screen keeps it to what it has room for). */
  | {type: 'scroll'; id: string; top: number}
  /** Rows [from, to) of a text (`key`, see readKey) were on a frame that fit the terminal. */
  | {type: 'seen'; key: string; from: number; to: number}

export const initialState: ApprovalsState = {views: [], loaded: false, filter: '', mode: {kind: 'browse'}, warnings: [], readRows: {}}

/** The first row of request `id`'s text on screen. */
export function topOf(state: Pick<ApprovalsState, 'scroll'>, id: string): number {
  return state.scroll?.id === id ? state.scroll.top : 0
}

/** What the rows read of a text are kept under: its request as read (digest) and the width it was cut into rows for. */
export function readKey(digest: string, width: number): string {
  return `${digest}@${width}`
}

/** How many rows of a text (`key`, see readKey) the reviewer has had on screen. */
export function rowsRead(state: Pick<ApprovalsState, 'readRows'>, key: string): number {
  return (state.readRows[key] ?? []).reduce((n, [from, to]) => n + to - from, 0)
}

/** `spans` with [from, to) added, still sorted and disjoint; the same array when nothing is new. */
function withSpan(spans: readonly [number, number][], from: number, to: number): [number, number][] {
  if (to <= from || spans.some(([a, b]) => a <= from && to <= b)) return spans as [number, number][]
  const out: [number, number][] = []
  let lo = from
  let hi = to
  for (const [a, b] of spans) {
    if (b < lo || a > hi) out.push([a, b])
    else {
      lo = Math.min(lo, a)
      hi = Math.max(hi, b)
    }
  }
  out.push([lo, hi])
  return out.sort((x, y) => x[0] - y[0])
}

/** Requests matching the filter: any of id, requester, target, class or SQL contains it. */
export function visible(state: Pick<ApprovalsState, 'views' | 'filter'>): RequestView[] {
  const f = state.filter.trim().toLowerCase()
  if (!f) return state.views
  return state.views.filter((v) => [v.request.id, requesterLabel(v.request.requester), v.request.target, v.request.class, v.request.sql].some((s) => s.toLowerCase().includes(f)))
}

export function selected(state: ApprovalsState): RequestView | undefined {
  const list = visible(state)
  return list.find((v) => v.request.id === state.selectedId) ?? list[0]
}

export function reducer(state: ApprovalsState, action: Action): ApprovalsState {
  switch (action.type) {
    case 'loaded': {
      const next = {...state, views: action.views, loaded: true, loadError: undefined}
      const gone = decidingGone(state.mode, action.views)
      // A decision being typed is for the request the reviewer read: should it leave the list or
      // change, the prompt closes rather than decide whatever the selection falls to.
      if (gone) return {...next, mode: {kind: 'browse'}, message: {kind: 'error', text: gone}, selectedId: selected(next)?.request.id}
      return {...next, selectedId: selected(next)?.request.id}
    }
    case 'load-failed':
      return {...state, loaded: true, loadError: action.error}
    case 'move': {
      const list = visible(state)
      if (list.length === 0) return state
      const at = Math.max(0, list.findIndex((v) => v.request.id === selected(state)?.request.id))
      const to = Math.min(list.length - 1, Math.max(0, at + action.delta))
      return {...state, selectedId: list[to]!.request.id, message: undefined}
    }
    case 'start-input':
      return {...state, mode: {kind: 'input', input: action.input, text: action.text ?? '', ...(action.request ? {request: action.request} : {})}, message: undefined}
    // Appending in the reducer, not the view, so keys typed faster than frames are drawn all land.
    case 'type':
      return state.mode.kind === 'input' ? {...state, mode: {...state.mode, text: state.mode.text + action.text}} : state
    case 'erase':
      return state.mode.kind === 'input' ? {...state, mode: {...state.mode, text: state.mode.text.slice(0, -1)}} : state
    case 'cancel-input':
      return {...state, mode: {kind: 'browse'}}
    case 'apply-filter': {
      const next = {...state, filter: action.text, mode: {kind: 'browse'} as Mode}
      return {...next, selectedId: selected(next)?.request.id}
    }
    case 'busy':
      return {...state, mode: {kind: 'busy', label: action.label}, message: undefined}
    case 'done':
      return {...state, mode: {kind: 'browse'}, message: action.message}
    case 'warn':
      return action.messages.length ? {...state, warnings: [...new Set([...state.warnings, ...action.messages])]} : state
    case 'scroll':
      return {...state, scroll: {id: action.id, top: action.top}, message: undefined}
    case 'seen': {
      const spans = state.readRows[action.key] ?? []
      const next = withSpan(spans, action.from, action.to)
      // Dispatched after every frame: unchanged, the state stays the same object and nothing is drawn again.
      return next === spans ? state : {...state, readRows: {...state.readRows, [action.key]: next}}
    }
  }
}

/**
 * Why the request a decision is being typed for can no longer be decided from this screen: it left
 * the list (withdrawn, expired, decided by someone else) or it is no longer what the reviewer read
 * (its record changed in the bucket). Undefined while it is there as read.
 */
export function decidingGone(mode: Mode, views: readonly RequestView[]): string | undefined {
  if (mode.kind !== 'input' || !mode.request) return undefined
  const {id, digest} = mode.request
  const now = views.find((v) => v.request.id === id)
  if (!now) return `${id} is no longer pending (withdrawn, expired or decided by someone else), so nothing was decided.`
  if (requestDigest(now.request) !== digest) return `${id} changed since you read it, so nothing was decided; read it again before deciding.`
  return undefined
}

export interface ApprovalsSource {
  /** Pending requests this reviewer may decide. */
  load(): Promise<RequestView[]>
  /** Decides and returns the confirmation to show; throws with a message to show otherwise. */
  decide(input: DecideInput): Promise<string>
  /** Warnings raised since the last call (the screen owns the terminal, so nothing else may print). */
  takeWarnings?(): string[]
}

export interface UseApprovals {
  state: ApprovalsState
  dispatch: (a: Action) => void
  refresh(): Promise<void>
  decide(input: DecideInput, label: string): Promise<void>
}

export function useApprovals(source: ApprovalsSource, refreshMs: number): UseApprovals {
  const [state, dispatch] = useReducer(reducer, initialState)
  const live = useRef(true)
  const refresh = useCallback(async () => {
    if (live.current && source.takeWarnings) dispatch({type: 'warn', messages: source.takeWarnings()})
    try {
      const views = await source.load()
      if (live.current) dispatch({type: 'loaded', views})
    } catch (e) {
      if (live.current) dispatch({type: 'load-failed', error: (e as Error).message})
    }
  }, [source])
  const decide = useCallback(
    async (input: DecideInput, label: string) => {
      dispatch({type: 'busy', label})
      let message: Message
      try {
        message = {kind: 'ok', text: await source.decide(input)}
      } catch (e) {
        message = {kind: 'error', text: (e as Error).message}
      }
      if (!live.current) return
      if (source.takeWarnings) dispatch({type: 'warn', messages: source.takeWarnings()})
      dispatch({type: 'done', message})
      await refresh()
    },
    [source, refresh],
  )
  useEffect(() => {
    live.current = true
    void refresh()
    const timer = setInterval(() => void refresh(), refreshMs)
    return () => {
      live.current = false
      clearInterval(timer)
    }
  }, [refresh, refreshMs])
  return {state, dispatch, refresh, decide}
}
