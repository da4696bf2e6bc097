/**
 * `dbgate approve`: pending requests on the left of the reviewer's attention, the selected one in
 * full below, the keys always on screen. Components take data and callbacks; state lives in
 * useApprovals.
 */
import {Box, Text, useApp, useInput, useStdout} from 'ink'
import {useMemo, useRef} from 'react'
import {Chalk} from 'chalk'
import {boundValues, oneLineSql, recentMark, requestRow, shortDuration} from '../../approvals/format.js'
import {parseDuration} from '../../util/duration.js'
import type {RequestView} from '../../approvals/types.js'
import {requesterLabel} from '../../approvals/types.js'
import {agentLabel} from '../../identity/types.js'
import {paintPiece, sqlPieces, wrapPieces, type SqlPiece} from '../highlight.js'
import {visible as printable, visibleDeep} from '../../util/visible.js'
import {heldLines} from '../../approvals/format.js'
import {decidingGone, rowsRead, selected, topOf, useApprovals, visible, type ApprovalsSource, type ApprovalsState, type Mode, type ReadRequest} from './state.js'
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
  const {stdout} = useStdout()
  const {state, dispatch, refresh, decide} = useApprovals(source, refreshMs)
  const current = selected(state)
  // The border and padding take four columns.
  const width = Math.max(20, (stdout?.columns ?? 100) - 4)
  // Scanned and cut once per request read (a refresh reads it again), not at every key.
  const body = useMemo(() => (current ? reviewText(current.request, width) : []), [current?.request, width])
  // Ink swaps in a new input handler only after the frame is drawn; reading state through a ref
  // set during render means a key pressed right after a frame acts on what that frame shows.
  const latest = useRef({state, current, body})
  latest.current = {state, current, body}

  useInput((input, key) => {
    const {state, current, body} = latest.current
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
      return dispatch({type: 'scroll', ...request, delta: input === ' ' || key.pageDown ? SQL_PAGE : -SQL_PAGE, rows: body.length, page: SQL_PAGE})
    }
    // A text longer than the screen is paged, and approved only once every page of it has been
    // on screen: what scrolled out of sight (a statement above forty lines of comments) is not read.
    const read = rowsRead(state, request.id, request.digest, SQL_PAGE)
    if ((input === 'a' || input === 'w') && read < body.length) {
      return dispatch({
        type: 'done',
        message: {kind: 'error', text: `Read all of ${request.id} before approving it: its text takes ${body.length} lines and you have seen ${read} (space shows the next page). Deny it if it is too long to review.`},
      })
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

  return (
    <Box flexDirection="column">
      <Header reviewer={reviewer} state={state} />
      {state.warnings.map((w) => (
        <Text key={w} color="yellow">
          Warning: {printable(w)}
        </Text>
      ))}
      <RequestList views={visible(state)} selectedId={current?.request.id} now={now()} loaded={state.loaded} />
      {current ? <Detail view={current} now={now()} rows={body} top={topOf(state, current.request.id)} /> : null}
      <Status mode={state.mode} message={state.message} loadError={state.loadError} deciding={deciding} />
      <KeyBar mode={state.mode} paged={body.length > SQL_PAGE} />
    </Box>
  )
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
  const rows = views.map((v) => visibleDeep(requestRow(v, now)))
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
    </Box>
  )
}

/** Rows of a request's text on screen at once; a longer one is paged (space, b). */
export const SQL_PAGE = 20

/**
 * What a reviewer reads of a request, as rows of at most `width` columns: the whole SQL, coloured
 * by PostgreSQL's own tokens and made printable, then the values a Bind holds. Cut into rows here
 * (never by the terminal), so the screen shows a known part of it and says which.
 */
export function reviewText(request: RequestView['request'], width: number): SqlPiece[][] {
  const pieces = sqlPieces(request.sql, (s) => printable(s, {lines: true}))
  if (request.params) pieces.push({text: '\n', kind: 'plain'}, {text: 'with the values ', kind: 'comment'}, {text: boundValues(request.params), kind: 'plain'})
  // What `EXECUTE p` runs is p's text: read with the rest, so approving needs it read too.
  for (const p of request.prepared ?? []) pieces.push({text: '\n\n', kind: 'plain'}, {text: `where ${printable(p.name)} is the prepared statement:`, kind: 'comment'}, {text: '\n', kind: 'plain'}, ...sqlPieces(p.sql, (x) => printable(x, {lines: true})))
  return wrapPieces(pieces, width)
}

/** How many `needs review` lines the detail pane shows, and how much of each: lines above the text must never push it off the screen. */
const HELD_SHOWN = 4
const HELD_LINE_CHARS = 300

function shortHeldLines(r: RequestView['request']): string[] {
  const all = heldLines(r).map((l) => (l.length > HELD_LINE_CHARS ? `${l.slice(0, HELD_LINE_CHARS)}…` : l))
  if (all.length <= HELD_SHOWN) return all
  return [...all.slice(0, HELD_SHOWN - 1), `…and ${all.length - HELD_SHOWN + 1} more parts that need review: read them all with dbgate approvals show ${r.id}`]
}

export function Detail({view, now, rows = reviewText(view.request, 96), top = 0}: {view: RequestView; now: Date; rows?: SqlPiece[][]; top?: number}) {
  // What the reviewer approves is what they read: every string of the request is made visible, so
  // no escape sequence, carriage return or bidi control can show them a statement other than the one held.
  const r = visibleDeep(view.request)
  const left = Date.parse(r.expiresAt) - now.getTime()
  return (
    <Box flexDirection="column" marginTop={1} borderStyle="round" paddingX={1}>
      <Text>
        <Text bold>{r.id}</Text> · {requesterLabel(r.requester)} ({r.requester.groups.join(', ') || 'no groups'}) on {r.target}/{r.database}
      </Text>
      {r.agent ? (
        <Text color="magenta">
          AI agent {agentLabel(r.agent)} acting for {requesterLabel(r.requester)}: the statement was written by the agent
        </Text>
      ) : null}
      <Text>
        rule <Text color="yellow">{r.ruleId}</Text>: {r.reason}
      </Text>
      {shortHeldLines(r).map((line, i) => (
        <Text key={i} color="yellow">
          {line}
        </Text>
      ))}
      <Text dimColor>
        {r.class} · asked {shortDuration(now.getTime() - Date.parse(r.createdAt))} ago · expires in {shortDuration(left)} · reviewers {r.reviewers.join(', ')}
        {r.windows ? ' · windows allowed' : ''}
      </Text>
      {r.settings && Object.keys(r.settings).length > 0 ? (
        <Text>
          session settings: {Object.entries(r.settings)
            .map(([k, v]) => `${k} = ${v}`)
            .join(' · ')}
        </Text>
      ) : null}
      <Text>
        {r.statements.length || 1} statement{r.statements.length > 1 ? 's' : ''}
        {r.statements.length ? `: ${r.statements.map((s) => s.command).join('; ')}` : ''} · {rows.length} line{rows.length === 1 ? '' : 's'}
        {r.params ? ` · ${r.params.length} bound value${r.params.length === 1 ? '' : 's'}` : ''}
      </Text>
      <Box marginTop={1} flexDirection="column">
        {rows.slice(top, top + SQL_PAGE).map((row, i) => (
          <Text key={top + i} wrap="truncate">
            {row.map((p) => paintPiece(p, chalk)).join('') || ' '}
          </Text>
        ))}
      </Box>
      {rows.length > SQL_PAGE ? (
        <Text color="yellow">
          lines {top + 1}–{Math.min(rows.length, top + SQL_PAGE)} of {rows.length} · space: next page · b: previous
        </Text>
      ) : null}
      {r.recent.length > 0 ? (
        <Box flexDirection="column" marginTop={1}>
          <Text dimColor>Earlier in this session:</Text>
          {r.recent.map((s, i) => (
            <Text key={i} dimColor>
              {'  '}
              {recentMark(s)} {oneLineSql(view.request.recent[i]!.sql, 100)}
            </Text>
          ))}
        </Box>
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
