/**
 * Output that attacks its reader: everything a client or an IdP chose (SQL, parameters, error
 * messages, column names, application_name, names and groups) is printed to auditors' terminals,
 * to the reviewer's approval screen and into reports. None of it may act on the terminal (escape
 * sequences, carriage returns) or change what a reader sees (bidi overrides, zero-width
 * characters) — a reviewer approving `DROP TABLE` that displays as `SELECT 1`.
 */
import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {render} from 'ink-testing-library'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {AuditEvent} from '../../src/audit/events.js'
import {highlight, parseEvents} from '../../src/audit/read.js'
import {Recorder} from '../../src/audit/recorder.js'
import {createRecordingHooks} from '../../src/audit/recording-hooks.js'
import {renderEvent, renderTimeline} from '../../src/audit/render.js'
import {loadOrCreateInstallationKey} from '../../src/audit/signing.js'
import {spoolStatus} from '../../src/audit/spool-scan.js'
import {formatRequests} from '../../src/approvals/cli.js'
import {confirmation} from '../../src/approvals/review.js'
import type {ApprovalRequest, RequestView} from '../../src/approvals/types.js'
import {renderTable} from '../../src/cli/table.js'
import {mdCell, mdCode} from '../../src/report/markdown.js'
import {esc} from '../../src/report/svg.js'
import {Detail, RequestList} from '../../src/tui/approvals/App.js'
import {jsonText, visible} from '../../src/util/visible.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {waitFor} from '../helpers/wait.js'
import {alice, removeTempDirs, tempDir} from './helpers.js'

/** Each hides or fakes what a reader sees, each in its own way. */
const HOSTILE: Record<string, string> = {
  'CSI erase line + cursor home': 'DROP TABLE users;\x1b[2K\x1b[1GSELECT 1',
  'carriage return overwrite': 'DROP TABLE users;\rSELECT 1          ',
  'OSC 8 hyperlink': '\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\',
  'OSC 52 clipboard write': '\x1b]52;c;cm0gLXJmIH4K\x07',
  '8-bit CSI': 'DROP\u009b2KSELECT 1',
  'backspaces': 'DROP TABLE users\b\b\b\b\b\b\b\b\b\b\b\b\b\b\b\bSELECT 1',
  'bell and NUL': 'x\x07\x00y',
  'bidi override': 'SELECT 1 /* \u202e */ ; DROP TABLE users',
  'bidi isolates': 'a\u2066b\u2067c\u2068d\u2069',
  'zero-width': 'DR\u200bOP\u200c\u200d\u2060\ufeff',
  'soft hyphen and tags': 'a\u00adb\u{e0041}\u{e0042}',
  'line separators': 'SELECT 1\u2028DROP TABLE users\u2029',
  'hangul filler': 'a\u3164b\u115fc',
  'variation selector': 'a\ufe0fb\u{e0100}',
}

/** Any character that acts on a terminal or draws nothing; `\n` and tabs are layout. */
const UNSEEN = /(?![\n\t])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\u034F\u115F\u1160\u17B4\u17B5\u180B-\u180F\u3164\uFE00-\uFE0F\uFFA0\u{E0100}-\u{E01EF}]/u

/** Output as printed, less the colour (SGR) sequences chalk and Ink add themselves. */
const withoutOwnColour = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '')

function expectHarmless(out: string, what: string) {
  const found = UNSEEN.exec(withoutOwnColour(out))
  expect(found, `${what}: ${JSON.stringify(found?.[0])} reached the output: ${JSON.stringify(out)}`).toBeNull()
}

const event = (type: string, data: unknown, seq = 2): AuditEvent => ({v: 1, type, session: 's-1', seq, ts: '2026-03-01T10:00:00.000Z', prev: '0'.repeat(64), data, hash: '0'.repeat(64)}) as AuditEvent

function eventsCarrying(s: string): AuditEvent[] {
  const identity = {subject: s, email: s, name: s, groups: [s], issuer: s, kind: 'human', tokenHash: ''}
  return [
    event('session.start', {sessionId: s, identity, target: s, database: s, dbUser: s, client: {application: s, address: s}, connectionId: 1, startedAt: '2026-03-01T10:00:00.000Z', dbgateVersion: s, policy: {hash: s, version: s}, keyId: s, host: s, agent: {client: 'mcp', name: s, version: s}}, 1),
    event('statement.streaming', {connectionId: 1, protocol: 'simple', sql: `${s}\n${s}`, normalized: s, fingerprint: s, class: s, decision: s, ruleId: s, startedAt: '2026-03-01T10:00:00.000Z', rows: 1, tables: [s], maskedColumns: [s]}),
    event('statement', {connectionId: 1, protocol: 'simple', sql: `${s}\n${s}`, normalized: s, fingerprint: s, params: [s, null], class: s, decision: s, ruleId: s, approvalId: s, startedAt: '2026-03-01T10:00:00.000Z', durationMs: 1, rows: 1, commandTags: [s], outcome: 'error', tables: [s], maskedColumns: [s], error: {sqlstate: s, message: s}, preview: {columns: [s], rows: [[s]], truncated: true}}),
    event('approval.requested', {approvalId: s, class: s, ruleId: s, reason: s, reviewers: [s], expiresAt: s}),
    event('approval.decided', {approvalId: s, decision: 'approved', reason: s, reviewer: {email: s, subject: s, groups: [s], tokenIssuedAt: s}}),
    event('approval.rejected_decision', {approvalId: s, problem: s, claimedReviewer: {email: s}}),
    event('approval.withdrawn', {approvalId: s, reason: s}),
    event('approval.expired', {approvalId: s, expiresAt: s}),
    event(s, {[s]: s}),
    event('session.end', {reason: s, endedAt: s, totals: {statements: 1, denied: 0, errors: 1, rows: 1}}),
  ]
}

function request(s: string): ApprovalRequest {
  return {
    v: 1,
    id: 'apr-k3x9m2p7qa',
    target: s,
    database: s,
    requester: {subject: s, email: s, name: s, groups: [s], issuer: s, kind: 'human'},
    agent: {client: 'mcp', name: s, version: s},
    sessionId: 's-1',
    connectionId: 1,
    sql: `${s}\n${s}`,
    statements: [],
    class: s,
    ruleId: s,
    reason: s,
    reviewers: [s],
    createdAt: new Date().toISOString(),
    expiresAt: new Date(Date.now() + 60_000).toISOString(),
    windows: true,
    sealKey: 'x',
    host: s,
    recent: [{sql: s, decision: 'allow', outcome: 'ok', at: new Date().toISOString()}],
  } as ApprovalRequest
}

describe('recorded and requested text cannot act on its reader', () => {
  for (const [name, s] of Object.entries(HOSTILE)) {
    describe(name, () => {
      it('sessions show / replay: every field of every event type', () => {
        for (const color of [false, true]) {
          const lines = renderTimeline(eventsCarrying(s), {color})
          expectHarmless(lines.join('\n'), 'timeline')
          // Each hidden character is still there for the auditor to see, as an escape.
          expect(lines.join('\n')).toContain(visible(s).slice(0, 12))
        }
      })

      it('sessions list and approvals list tables, on a terminal and piped', () => {
        for (const tty of [true, false]) {
          const out = renderTable([{a: s}], [{header: 'A', value: (r) => r.a}], {tty})
          expectHarmless(out, 'table')
          if (!tty) expect(out.split('\n')).toHaveLength(1)
          expectHarmless(formatRequests([{request: request(s), state: 'pending'} as RequestView], tty), 'approvals list')
        }
      })

      it('sessions search highlighting', () => {
        const sql = `select ${s} from t`
        expectHarmless(highlight(sql, [[0, 6]], (x) => `\x1b[7m${x}\x1b[27m`, visible), 'search')
      })

      it('the approval screen and the confirmation a reviewer reads', () => {
        const view = {request: request(s), state: 'pending'} as RequestView
        const detail = render(<Detail view={view} now={new Date()} />)
        expectHarmless(detail.lastFrame() ?? '', 'approval detail')
        detail.unmount()
        const list = render(<RequestList views={[view]} selectedId={view.request.id} now={new Date()} loaded={true} />)
        expectHarmless(list.lastFrame() ?? '', 'approval list')
        list.unmount()
        for (const action of ['approve', 'deny', 'window'] as const) {
          expectHarmless(confirmation({request: view.request, decision: {action, windowMs: 60_000}} as Parameters<typeof confirmation>[0]), 'confirmation')
        }
      })

      it('--json output: the same document, with nothing raw a terminal acts on', () => {
        const value = {[s]: [s, {sql: `${s}\n${s}`}], n: 1}
        const text = jsonText(value)
        expect(JSON.parse(text)).toEqual(value)
        expectHarmless(text, 'json')
      })

      it('report.html and report.md cells', () => {
        expectHarmless(esc(s), 'html')
        expectHarmless(mdCell(s), 'md cell')
        expectHarmless(mdCode(s), 'md code')
      })
    })
  }

  it('keeps Markdown in recorded text as text: no links, images, emphasis, entities or HTML', () => {
    for (const s of ['[click](javascript:alert(1))', '![x](https://evil.example/t.png)', '**APPROVED**', '&#8238;', '<script>alert(1)</script>', '`code`', '_a_', '~~x~~', '# h']) {
      const cell = mdCell(s)
      // Every mark that opens a link, image, emphasis, code, strikethrough or entity is backslash-escaped; `<`/`>` become entities.
      expect(cell, s).not.toMatch(/(?<!\\)[[\]*_`~&](?![a-z]+;)/)
      expect(cell).not.toMatch(/<|>/)
    }
  })
})

describe('through a real tunnel', () => {
  let db: UpstreamInfo
  let t: TestTunnel | undefined
  beforeAll(async () => {
    db = await createTestDatabase('hostile_display')
  })
  afterAll(async () => {
    await t?.close()
    await removeTempDirs()
  })

  it('SQL, parameters, column names, error messages and application_name a client chose are shown escaped by sessions show', async () => {
    const key = await loadOrCreateInstallationKey(await tempDir('dbgate-keys-'))
    const spoolDir = await tempDir('dbgate-spool-')
    const recorder = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir})
    t = await startTunnel(db, {statement: () => ({action: 'allow'}), ...createRecordingHooks(recorder, {identity: alice, target: 'prod', describe: () => ({class: 'read'})})})
    const c = await t.client({application_name: 'psql\x1b]52;c;ZHJvcA==\x07\u202e'})
    for (const s of Object.values(HOSTILE)) {
      const text = s.replace(/\x00/g, '')
      const ident = text.replace(/"/g, '""')
      await c.query(`select $1::text as "${ident}", $q$${text}$q$ as literal`, [text])
      await expect(c.query(`select * from "${ident}"`)).rejects.toMatchObject({code: '42P01'})
    }
    await c.end()
    await waitFor(async () => (await spoolStatus(spoolDir)).sessions[0]?.state === 'ended', 'the recorder has sealed the session')
    const [file] = (await readdir(spoolDir)).filter((f) => f.endsWith('.jsonl'))
    const events = parseEvents(await readFile(join(spoolDir, file!), 'utf8'))
    // The recording itself keeps every byte the client sent (it is evidence); only the display escapes.
    expect(JSON.stringify(events)).toContain('\\u001b]52')
    const lines = renderTimeline(events, {color: true})
    expectHarmless(lines.join('\n'), 'timeline of a real session')
    expect(lines.join('\n')).toContain('\\x1b]52;c;')
  })
})
