/**
 * `dbgate approve`: pending requests on the left of the reviewer's attention, the selected one in
 * full below, the keys always on screen. Components take data and callbacks; state lives in
 * useApprovals.
 */
import {Box, measureElement, Text, useApp, useInput, useStdout, type DOMElement} from 'ink'
import {useEffect, useLayoutEffect, useMemo, useRef, useState, type ReactNode} from 'react'
import {Chalk} from 'chalk'
import {boundValues, oneLineSql, recentMark, requestRow, settingsLine, shortDuration} from '../../approvals/format.js'
import {parseDuration} from '../../util/duration.js'
import type {RequestView} from '../../approvals/types.js'
import {requesterLabel} from '../../approvals/types.js'
import {agentLabel} from '../../identity/types.js'
import {paintPiece, sqlPieces, wrapPieces, type PieceKind, type SqlPiece} from '../highlight.js'
import {visible as printable, visibleDeep} from '../../util/visible.js'
import {heldLines} from '../../approvals/format.js'
import {decidingGone, readKey, rowsRead, selected, topOf, useApprovals, visible, type ApprovalsSource, type ApprovalsState, type Mode, type ReadRequest} from './state.js'
import {requestDigest} from '../../approvals/store.js'

const chalk = new Chalk({level: 1})

export interface ApprovalsAppProps {
  source: ApprovalsSource
  /** The reviewer, shown in the header. */
  reviewer: string
  refreshMs?: number
  now?: () => Date
  /** Default window length offered by `w`. */
  defaultWindow?: string
}

export function ApprovalsApp({source, reviewer, refreshMs = 2000, now = () => new Date(), defaultWindow = '30m'}: ApprovalsAppProps) {
  const {exit} = useApp()
  const screen = useScreenSize()
  const {state, dispatch, refresh, decide} = useApprovals(source, refreshMs)
  const current = selected(state)
  // The border and padding take four columns.
  const width = Math.max(20, (screen.columns ?? 100) - 4)
  // Scanned and cut once per request read (a refresh reads it again) and width, not at every key.
  const body = useMemo(() => (current ? reviewRows(current.request, width) : []), [current?.request, width])
  const digest = useMemo(() => (current ? requestDigest(current.request) : ''), [current?.request])
  // Rows of the request on screen at once: what the terminal has room for below and around the rest
  // of the frame, measured after each frame (see the effect below).
  const [page, setPage] = useState(SQL_PAGE)
  const top = current ? Math.max(0, Math.min(topOf(state, current.request.id), body.length - page)) : 0
  const frame = useRef<DOMElement>(null)
  /** The rows of the last frame that fit the terminal: paging on goes from the first row after them. */
  const lastFit = useRef<{key: string; top: number; shown: number}>(undefined)
  // Ink swaps in a new input handler only after the frame is drawn; reading state through a ref
  // set during render means a key pressed right after a frame acts on what that frame shows.
  const latest = useRef({state, current, body, page, width, top})
  latest.current = {state, current, body, page, width, top}

  // Ink writes a frame taller than the terminal whole, and the terminal scrolls its top away (Ink
  // clears the scrollback at the next frame): rows that counted as on screen were never seen. Each
  // frame is measured as Ink laid it out; the page shrinks until the frame fits, and only rows of
  // a frame that fits count as read. A layout effect: Ink has laid the frame out and drawn it when
  // it runs, and it runs before any key pressed after the frame is read.
  useLayoutEffect(() => {
    if (!frame.current) return
    const height = measureElement(frame.current).height
    const shown = current ? Math.max(0, Math.min(page, body.length - top)) : 0
    const fits = !screen.rows || height <= screen.rows
    if (screen.rows) {
      const room = Math.max(0, Math.min(SQL_PAGE, screen.rows - (height - shown)))
      if (room !== page) setPage(room)
    }
    if (!fits || !current || shown === 0) return
    const key = readKey(digest, width)
    lastFit.current = {key, top, shown}
    dispatch({type: 'seen', key, from: top, to: top + shown})
  })

  useInput((input, key) => {
    const {state, current, body, page, width, top} = latest.current
    const mode = state.mode
    if (mode.kind === 'busy') return
    if (mode.kind === 'input') {
      if (key.escape) return dispatch({type: 'cancel-input'})
      if (key.return) return submit(mode, state.views)
      // A paste ending in a newline arrives as one chunk: take it as typed text, then Enter.
      const newline = input.search(/[\r\n]/)
      if (newline >= 0) return submit({...mode, text: mode.text + input.slice(0, newline)}, state.views)
      if (key.backspace || key.delete) return dispatch({type: 'erase'})
      if (!key.ctrl && !key.meta && input) dispatch({type: 'type', text: input})
      return
    }
    if (input === 'q' || key.escape) return exit()
    if (key.upArrow || input === 'k') return dispatch({type: 'move', delta: -1})
    if (key.downArrow || input === 'j') return dispatch({type: 'move', delta: 1})
    if (input === 'r') return void refresh()
    if (input === '/') return dispatch({type: 'start-input', input: 'filter', text: state.filter})
    if (!current) return
    // The decision is bound to the request on screen now, as read: a refresh that removes or
    // changes it closes the prompt instead of moving the decision to another request.
    const request: ReadRequest = {id: current.request.id, digest: requestDigest(current.request)}
    if (input === ' ' || key.pageDown || input === 'b' || key.pageUp) {
      // On from the rows the last frame that fit showed, so that paging on passes over no row (one
      // drawn in a frame too tall for the terminal, a moment before it was drawn again to fit).
      const fit = lastFit.current?.key === readKey(request.digest, width) ? lastFit.current : {top, shown: 0}
      const to = input === ' ' || key.pageDown ? fit.top + fit.shown : top - page
      return dispatch({type: 'scroll', id: request.id, top: Math.max(0, Math.min(body.length - 1, to))})
    }
    // A request longer than the screen is paged, and approved only once every row of it has been
    // on screen: what scrolled out of sight (a statement above forty lines of comments, or above
    // what the frame holds below it) is not read.
    const read = rowsRead(state, readKey(request.digest, width))
    if ((input === 'a' || input === 'w') && read < body.length) {
      // A frame that did not fit is drawn again with fewer rows at once: only a terminal with room
      // for none of them is too short.
      const text =
        page === 0
          ? `Your terminal (${screen.rows ?? '?'} rows) is too short to show ${request.id}: make it taller, or read it whole with \`dbgate approvals show ${request.id}\` and decide it with the digest printed there.`
          : `Read all of ${request.id} before approving it: it takes ${body.length} lines and you have seen ${read} (space shows the next page). Deny it if it is too long to review.`
      return dispatch({type: 'done', message: {kind: 'error', text}})
    }
    // Approving runs a statement on someone's database: one more key, and room for a reason.
    if (input === 'a') return dispatch({type: 'start-input', input: 'approve', request})
    if (input === 'd') return dispatch({type: 'start-input', input: 'reason', request})
    if (input === 'w') {
      if (!current.request.windows) return dispatch({type: 'done', message: {kind: 'error', text: `Target ${current.request.target} does not allow windows (approvals.windows is off).`}})
      return dispatch({type: 'start-input', input: 'window', text: defaultWindow, request})
    }
  })

  function submit(mode: Extract<Mode, {kind: 'input'}>, views: readonly RequestView[]) {
    if (mode.input === 'filter') return dispatch({type: 'apply-filter', text: mode.text})
    // Decided: the request the prompt was opened on, as it was read, never the selection of now.
    const read = mode.request
    if (!read) return dispatch({type: 'cancel-input'})
    const gone = decidingGone(mode, views)
    if (gone) return dispatch({type: 'done', message: {kind: 'error', text: gone}})
    const {id, digest} = read
    if (mode.input === 'approve') return void decide({id, digest, action: 'approve', ...(mode.text.trim() ? {reason: mode.text.trim()} : {})}, `Approving ${id}…`)
    if (mode.input === 'reason') {
      if (!mode.text.trim()) return dispatch({type: 'done', message: {kind: 'error', text: 'A denial needs a reason; the requester sees it.'}})
      return void decide({id, digest, action: 'deny', reason: mode.text}, `Denying ${id}…`)
    }
    const windowMs = parseDuration(mode.text)
    if (!windowMs) return dispatch({type: 'done', message: {kind: 'error', text: `${JSON.stringify(mode.text)} is not a duration (try 30m or 2h).`}})
    return void decide({id, digest, action: 'window', windowMs}, `Granting a ${shortDuration(windowMs)} window on ${id}…`)
  }

  const bound = state.mode.kind === 'input' ? state.mode.request : undefined
  const deciding = bound && state.views.find((v) => v.request.id === bound.id)

  // The latest few warnings: each planted record in the bucket adds one, and a screen of them would leave no room for the request.
  const warnings = state.warnings.slice(-WARNINGS_SHOWN)
  const more = state.warnings.length - warnings.length
  return (
    <Box flexDirection="column" ref={frame}>
      <Header reviewer={reviewer} state={state} />
      {more > 0 ? <Text color="yellow">Warning: {more} more warning{more === 1 ? '' : 's'} than shown here; `dbgate approvals list` prints them all</Text> : null}
      {warnings.map((w) => (
        <Text key={w} color="yellow">
          Warning: {printable(w)}
        </Text>
      ))}
      <RequestList views={visible(state)} selectedId={current?.request.id} now={now()} loaded={state.loaded} />
      {current ? <Detail view={current} rows={body} top={top} page={page} /> : null}
      <Status mode={state.mode} message={state.message} loadError={state.loadError} deciding={deciding} />
      <KeyBar mode={state.mode} paged={body.length > page} />
    </Box>
  )
}

const WARNINGS_SHOWN = 3

/** The terminal's size, drawn again when it changes (Ink lays out the old frame anew, with rows cut for the old width). */
function useScreenSize(): {columns?: number; rows?: number} {
  const {stdout} = useStdout()
  const [size, setSize] = useState({columns: stdout.columns, rows: stdout.rows})
  useEffect(() => {
    const resized = () => setSize({columns: stdout.columns, rows: stdout.rows})
    stdout.on('resize', resized)
    return () => void stdout.off('resize', resized)
  }, [stdout])
  return size
}

function Header({reviewer, state}: {reviewer: string; state: ApprovalsState}) {
  const count = visible(state).length
  return (
    <Box>
      <Text bold>dbgate approvals</Text>
      <Text> · {reviewer} · {count} pending</Text>
      {state.filter ? <Text color="yellow"> · filter: {state.filter}</Text> : null}
    </Box>
  )
}

export function RequestList({views, selectedId, now, loaded}: {views: RequestView[]; selectedId?: string; now: Date; loaded: boolean}) {
  if (!loaded) return <Text dimColor>Loading…</Text>
  if (views.length === 0) return <Text dimColor>No pending requests for you. This list refreshes by itself.</Text>
  // The requester, target and names come from the request (an IdP, a client): nothing in them may act on the terminal.
  // A few rows around the selected one: a long list would leave no room for the request itself.
  const at = Math.max(0, views.findIndex((v) => v.request.id === selectedId))
  const from = Math.max(0, Math.min(at - Math.floor(LIST_SHOWN / 2), views.length - LIST_SHOWN))
  const shown = views.slice(from, from + LIST_SHOWN)
  const rows = shown.map((v) => visibleDeep(requestRow(v, now)))
  const w = {id: 16, who: Math.max(9, ...rows.map((r) => r.requester.length)), target: Math.max(6, ...rows.map((r) => r.target.length)), cls: 9, age: 7}
  return (
    <Box flexDirection="column" marginTop={1}>
      <Text dimColor>
        {'  '}
        {'ID'.padEnd(w.id)} {'REQUESTER'.padEnd(w.who)} {'TARGET'.padEnd(w.target)} {'CLASS'.padEnd(w.cls)} {'AGE'.padEnd(w.age)} LEFT
      </Text>
      {rows.map((r) => {
        const on = r.id === selectedId
        return (
          <Text key={r.id} inverse={on}>
            {on ? '› ' : '  '}
            {r.id.padEnd(w.id)} {r.requester.padEnd(w.who)} {r.target.padEnd(w.target)} {r.class.padEnd(w.cls)} {r.age.padEnd(w.age)} {r.left}
          </Text>
        )
      })}
      {views.length > shown.length ? (
        <Text dimColor>
          {'  '}
          {from > 0 ? `${from} more above` : ''}
          {from > 0 && from + shown.length < views.length ? ' · ' : ''}
          {from + shown.length < views.length ? `${views.length - from - shown.length} more below` : ''} (↑/↓ to move)
        </Text>
      ) : null}
    </Box>
  )
}

const LIST_SHOWN = 5

/** Rows of a request on screen at once, at most; fewer where the terminal has no room for them, and a longer request is paged (space, b). */
export const SQL_PAGE = 20

/**
 * What a reviewer reads of a request's statement, as rows of at most `width` columns: the whole
 * SQL, coloured by PostgreSQL's own tokens and made printable, then the values a Bind holds. Cut
 * into rows here (never by the terminal), so the screen shows a known part of it and says which.
 */
export function reviewText(request: RequestView['request'], width: number): SqlPiece[][] {
  const pieces = sqlPieces(request.sql, (s) => printable(s, {lines: true}))
  if (request.params) pieces.push({text: '\n', kind: 'plain'}, {text: 'with the values ', kind: 'comment'}, {text: boundValues(request.params, request.paramTypes), kind: 'plain'})
  // What `EXECUTE p` runs is p's text: read with the rest, so approving needs it read too.
  for (const t of request.temporary ?? []) {
    pieces.push({text: '\n\n', kind: 'plain'}, {text: `where ${printable(t.name)} is a temporary ${printable(t.kind)} of this session${t.definition ? ':' : ', not the one of the same name in a schema'}`, kind: 'comment'})
    if (t.definition) pieces.push({text: '\n', kind: 'plain'}, ...sqlPieces(t.definition, (x) => printable(x, {lines: true})))
  }
  for (const p of request.prepared ?? []) pieces.push({text: '\n\n', kind: 'plain'}, {text: `where ${printable(p.name)} is the prepared statement:`, kind: 'comment'}, {text: '\n', kind: 'plain'}, ...sqlPieces(p.sql, (x) => printable(x, {lines: true})))
  return wrapPieces(pieces, width)
}

/** The kinds of the rows about a request around its text (who, why, settings, what ran before), beside the SQL's own. */
export type ReviewKind = PieceKind | 'title' | 'attention' | 'agent' | 'faint'
export type ReviewPiece = {text: string; kind: ReviewKind}

/** How many `needs review` lines the detail pane shows, and how much of each: lines above the text must never push it off the screen. */
const HELD_SHOWN = 4
const HELD_LINE_CHARS = 300

function shortHeldLines(r: RequestView['request']): string[] {
  const all = heldLines(r).map((l) => (l.length > HELD_LINE_CHARS ? `${l.slice(0, HELD_LINE_CHARS)}…` : l))
  if (all.length <= HELD_SHOWN) return all
  return [...all.slice(0, HELD_SHOWN - 1), `…and ${all.length - HELD_SHOWN + 1} more parts that need review: read them all with dbgate approvals show ${r.id}`]
}

/**
 * Everything a reviewer reads of a request, as one document of rows at most `width` columns wide:
 * who asks and why, the session's settings, the text (reviewText), what ran before it. One
 * document, paged as a whole by what the terminal has room for, so that approving needs every row
 * of it to have been on screen: the settings above the text count as much as the text. Nothing in
 * it changes with the clock, so a row is the same row at every frame.
 */
export function reviewRows(request: RequestView['request'], width: number): ReviewPiece[][] {
  // What the reviewer approves is what they read: every string of the request is made visible, so
  // no escape sequence, carriage return or bidi control can show them a statement other than the one held.
  const r = visibleDeep(request)
  const text = reviewText(request, width)
  const about: ReviewPiece[] = []
  const line = (...pieces: ReviewPiece[]) => {
    if (about.length > 0) about.push({text: '\n', kind: 'plain'})
    about.push(...pieces)
  }
  line({text: r.id, kind: 'title'}, {text: ` · ${requesterLabel(r.requester)} (${r.requester.groups.join(', ') || 'no groups'}) on ${r.target}/${r.database}`, kind: 'plain'})
  if (r.agent) line({text: `AI agent ${agentLabel(r.agent)} acting for ${requesterLabel(r.requester)}: the statement was written by the agent`, kind: 'agent'})
  line({text: 'rule ', kind: 'plain'}, {text: r.ruleId, kind: 'attention'}, {text: `: ${r.reason}`, kind: 'plain'})
  for (const held of shortHeldLines(r)) line({text: held, kind: 'attention'})
  line({text: `${r.class} · reviewers ${r.reviewers.join(', ')}${r.windows ? ' · windows allowed' : ''}`, kind: 'faint'})
  if (r.settings && Object.keys(r.settings).length > 0) {
    line({text: `session settings: ${settingsLine(r.settings)}`, kind: 'plain'})
  }
  const count = r.statements.length || 1
  line({
    text: `${count} statement${r.statements.length > 1 ? 's' : ''}${r.statements.length ? `: ${r.statements.map((s) => s.command).join('; ')}` : ''} · ${text.length} line${text.length === 1 ? '' : 's'}${r.params ? ` · ${r.params.length} bound value${r.params.length === 1 ? '' : 's'}` : ''}`,
    kind: 'plain',
  })
  const rows: ReviewPiece[][] = [...wrapPieces(about, width), [], ...text]
  if (r.recent.length > 0) {
    const earlier: ReviewPiece[] = [{text: 'Earlier in this session:', kind: 'faint'}]
    request.recent.forEach((s, i) => earlier.push({text: '\n', kind: 'plain'}, {text: `  ${recentMark(r.recent[i]!)} ${oneLineSql(s.sql, 100)}`, kind: 'faint'}))
    rows.push([], ...wrapPieces(earlier, width))
  }
  return rows
}

function paintRow(row: readonly ReviewPiece[]): ReactNode[] {
  return row.map((p, i) => {
    switch (p.kind) {
      case 'title':
        return (
          <Text key={i} bold>
            {p.text}
          </Text>
        )
      case 'attention':
        return (
          <Text key={i} color="yellow">
            {p.text}
          </Text>
        )
      case 'agent':
        return (
          <Text key={i} color="magenta">
            {p.text}
          </Text>
        )
      case 'faint':
        return (
          <Text key={i} dimColor>
            {p.text}
          </Text>
        )
      default:
        return paintPiece({text: p.text, kind: p.kind}, chalk)
    }
  })
}

/**
 * The selected request: `page` rows of its document (reviewRows) from `top`, and which rows those
 * are when it has more. The frame around it decides `page` (what fits the terminal).
 */
export function Detail({view, rows = reviewRows(view.request, 96), top = 0, page = rows.length}: {view: RequestView; now?: Date; rows?: ReviewPiece[][]; top?: number; page?: number}) {
  return (
    <Box flexDirection="column" marginTop={1} borderStyle="round" paddingX={1}>
      {rows.slice(top, top + page).map((row, i) => (
        <Text key={top + i} wrap="truncate">
          {row.length > 0 ? paintRow(row) : ' '}
        </Text>
      ))}
      {rows.length > page ? (
        <Text color="yellow">
          {page === 0
            ? `${view.request.id} takes ${rows.length} lines and the terminal has room for none of them: make it taller`
            : `lines ${top + 1}–${Math.min(rows.length, top + page)} of ${rows.length} · space: next page · b: previous`}
        </Text>
      ) : null}
    </Box>
  )
}

function Status({mode, message, loadError, deciding}: {mode: Mode; message?: {kind: 'ok' | 'error'; text: string}; loadError?: string; deciding?: RequestView}) {
  if (mode.kind === 'busy') return <Text color="cyan">{mode.label}</Text>
  if (mode.kind === 'input') {
    const label =
      mode.input === 'filter'
        ? 'Filter'
        : mode.input === 'reason'
          ? 'Reason for denying'
          : mode.input === 'approve'
            ? `Approve ${deciding?.request.id ?? ''} for ${deciding ? printable(requesterLabel(deciding.request.requester)) : '?'}? Reason (optional)`
            : 'Window length (e.g. 30m, 2h)'
    const prompt = (
      <Text>
        <Text bold>{label}: </Text>
        {printable(mode.text)}
        <Text inverse> </Text>
      </Text>
    )
    if (mode.input !== 'window' || !deciding) return prompt
    // A window is granted on one request and lets through every later one its rule holds, which
    // the reviewer has not read: say so where the length is typed.
    const r = deciding.request
    return (
      <Box flexDirection="column">
        <Text color="yellow">
          A window lets every {printable(r.class)} statement that rule {printable(r.ruleId)} holds ({printable(r.reason)}) run without asking, from {printable(requesterLabel(r.requester))} through the same tunnel, until it closes: not only {r.id}.
        </Text>
        {prompt}
      </Box>
    )
  }
  if (message) return <Text color={message.kind === 'ok' ? 'green' : 'red'}>{message.kind === 'ok' ? '✓ ' : '✗ '}{printable(message.text)}</Text>
  if (loadError) return <Text color="red">Could not refresh: {printable(loadError)}</Text>
  return null
}

export function KeyBar({mode, paged = false}: {mode: Mode; paged?: boolean}) {
  const keys =
    mode.kind === 'input'
      ? mode.input === 'approve'
        ? 'enter approve · esc cancel'
        : 'enter confirm · esc cancel'
      : `↑/k ↓/j move${paged ? ' · space/b page' : ''} · a approve · d deny · w window · r refresh · / filter · q quit`
  return <Text dimColor>{keys}</Text>
}
