/**
 * A reviewer approves only what has been on their screen. `dbgate approve` paged a request's text
 * twenty rows at a time and counted each page as read, whatever the terminal's height: Ink writes a
 * frame taller than the terminal whole, the terminal scrolls its top away (and Ink clears the
 * scrollback at the next frame), and on a terminal of 24 or 30 rows the first rows of the text, the
 * session settings and the rule above it were never on screen. A requester chooses what makes the
 * frame tall (five earlier statements of a hundred characters, bound values, a few lines of
 * comment), and puts the statement that matters where the screen does not reach.
 *
 * Through a real tunnel, a real IdP and real PostgreSQL with the interactive view over the same
 * source the CLI builds, and with requests on their own, on terminals of a known size: approving
 * is possible only once every row of the text, and every line about the request, has been on
 * the screen.
 */
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {readRequest} from '../../src/approvals/store.js'
import type {ApprovalRequest, RequestView} from '../../src/approvals/types.js'
import type {DecideInput} from '../../src/approvals/review.js'
import {ApprovalsApp} from '../../src/tui/approvals/App.js'
import {reviewSource} from '../../src/tui/approvals/run.js'
import type {ApprovalsSource} from '../../src/tui/approvals/state.js'
import {loadParser} from '../../src/sql/parser.js'
import {withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {approvalSetting, watchNotices, type ApprovalSetting} from './helpers.js'
import {renderIn, type Terminal} from './terminal.js'
import {NOW, sampleRequest} from './sample-request.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m'].join('\n')

/** Five statements a session might run before the one held, each long enough to take two rows in "Earlier in this session". */
const EARLIER = Array.from({length: 5}, (_, i) => `select 'the orders of day ${i} of the week, grouped by status and by region, for the morning report' as note`)

let term: Terminal | undefined
afterEach(() => {
  term?.unmount()
  term = undefined
})

const PROMPT = /Approve apr-[a-z0-9]+ for .*\? Reason \(optional\)/

/**
 * Does what a reviewer does to approve the selected request: `a`, and where the screen says to read
 * the rest first, the next page (space). Returns every line that had been on the screen by the time
 * the approval prompt came up.
 */
async function reachApproval(t: Terminal): Promise<string> {
  const flat = () => t.frame().replace(/\s+/g, ' ')
  for (let i = 0; i < 60; i++) {
    const at = t.frameCount()
    t.keys('a')
    await waitFor(() => t.frameCount() > at && (PROMPT.test(flat()) || /Read all of|too short/.test(flat())), () => `the screen answers a; last frame:\n${t.frame()}`, {timeoutMs: 5000, intervalMs: 5})
    if (PROMPT.test(flat())) return t.seen().join('\n')
    if (/too short/.test(flat())) throw new Error(`the terminal was judged too short:\n${t.frame()}`)
    const moved = t.frameCount()
    t.keys(' ')
    await waitFor(() => t.frameCount() > moved, 'the next page is drawn', {timeoutMs: 5000, intervalMs: 5})
  }
  throw new Error(`never reached the approval prompt; last frame:\n${t.frame()}`)
}

/** Every line of `sql` (each short enough for one row) must have been on the screen. */
function expectAllSeen(seen: string, lines: readonly string[], what: string) {
  const missing = lines.filter((l) => l.trim() !== '' && !seen.includes(l))
  expect(missing, `${what}: never on the screen before approving`).toEqual([])
}

describe('a reviewer approves only what has been on their screen', () => {
  let s: ApprovalSetting
  beforeAll(async () => {
    await loadParser()
    s = await approvalSetting({database: 'what_fits', target: TARGET, requester: 'alice', others: ['bob']})
    await withClient(s.db.url, (c) => c.query('create table precious_fit (id int); create table orders_fit (id int, day date)'))
  })
  afterAll(() => s?.close())

  it('through a real tunnel: a statement at the top of a short text, with the earlier statements below it, on terminals of 24 and 30 rows', async () => {
    for (const [rows, name] of [
      [24, 'fit_a'],
      [30, 'fit_b'],
    ] as const) {
      await withClient(s.db.url, (c) => c.query(`create table precious_${name} (id int)`))
      const c = await s.t.client()
      await c.query("set datestyle = 'SQL, DMY'")
      for (const q of EARLIER) await c.query(q)
      const lines = [
        `alter table precious_${name} rename to gone_${name};`,
        '-- routine: the nightly load is done, reindex the day column',
        ...Array.from({length: 6}, (_, i) => `-- step ${i + 1} of the runbook: check the load of region ${i + 1}`),
        "update orders_fit set day = '01/02/2026' where id = 7",
      ]
      const w = watchNotices(c)
      const held = c.query(lines.join('\n')).then(
        () => 'ran',
        (e: Error & {code?: string}) => e.code ?? e.message,
      )
      const id = await w.approvalId()
      const request = (await readRequest(s.bucket, id))!
      expect(request.settings).toMatchObject({DateStyle: 'SQL, DMY'})

      term = renderIn(<ApprovalsApp source={reviewSource({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')})} reviewer="bob@example.com" refreshMs={600_000} />, 100, rows)
      await waitFor(() => term!.frame().includes(`› ${id}`), () => `the request is listed; last frame:\n${term!.frame()}`)
      const seen = await reachApproval(term)
      expectAllSeen(seen, lines, `${rows} rows`)
      expect(seen, `${rows} rows`).toContain('DateStyle = SQL, DMY')
      expect(seen, `${rows} rows`).toMatch(/rule default\.[a-z-]+/)
      // The screen is drawn again to fit the terminal (the prompt's line took a row from the request).
      await waitFor(() => term!.frame().split('\n').length <= rows, () => `the frame fits ${rows} rows; last frame:\n${term!.frame()}`)
      term.keys('\r')
      expect(await held, `${rows} rows`).toBe('ran')
      expect(await withClient(s.db.url, async (x) => (await x.query('select to_regclass($1) is not null as gone', [`gone_${name}`])).rows[0].gone)).toBe(true)
      term.unmount()
      term = undefined
      await c.end()
    }
  })
})

describe('requests of every shape, on terminals of every size', () => {
  beforeAll(loadParser)
  const sample = (over: Partial<ApprovalRequest>): ApprovalRequest =>
    sampleRequest({
      requester: {subject: 'alice', email: 'alice@example.com', groups: ['engineering'], issuer: 'https://login.example.com', kind: 'human'},
      sql: 'select 1',
      recent: EARLIER.map((sql) => ({sql, decision: 'allow', outcome: 'ok', at: NOW.toISOString()})),
      ...over,
    })
  const source = (views: RequestView[]): ApprovalsSource & {calls: DecideInput[]} => {
    const src = {
      calls: [] as DecideInput[],
      load: async () => views,
      decide: async (input: DecideInput) => {
        src.calls.push(input)
        return `${input.action} ${input.id} done`
      },
    }
    return src
  }

  const filler = Array.from({length: 45}, (_, i) => `-- create index concurrently orders_status_${i} on orders (status)`)
  const cases: [string, Partial<ApprovalRequest>, string[], string[]][] = [
    ['a long text, paged', {sql: ['alter table payroll rename to gone;', ...filler, 'select 1'].join('\n')}, ['alter table payroll rename to gone;', ...filler], []],
    [
      'a short text under many lines about the request',
      {
        sql: "update orders set day = '01/02/2026' where id = 7",
        settings: {DateStyle: 'SQL, DMY', TimeZone: 'Pacific/Kiritimati', application_name: 'x'.repeat(60)},
        agent: {client: 'mcp', name: 'helpful-agent', version: '1.0'},
        held: Array.from({length: 4}, (_, i) => ({ruleId: 'default.volatile-function', reason: 'calls a volatile function', detail: `a trigger of orders runs public.audit_${i}, which runs SQL built at run time ${'and more '.repeat(12)}`})),
      },
      ["update orders set day = '01/02/2026' where id = 7"],
      ['DateStyle = SQL, DMY', 'AI agent helpful-agent 1.0 (MCP) acting for alice@example.com', 'public.audit_0', 'public.audit_2'],
    ],
    ['bound values', {sql: 'update payroll set amount = $1 where id = $2', params: ['1000000', '7']}, ['update payroll set amount = $1 where id = $2', "[$1 = '1000000', $2 = '7']"], []],
  ]
  for (const [what, over, lines, context] of cases) {
    for (const [columns, rows] of [
      [100, 24],
      [80, 30],
      [120, 40],
    ] as const) {
      it(`${what}, on a terminal of ${columns}×${rows}`, async () => {
        const src = source([{request: sample(over), state: 'pending'}])
        term = renderIn(<ApprovalsApp source={src} reviewer="bob@example.com" now={() => NOW} refreshMs={600_000} />, columns, rows)
        await waitFor(() => term!.frame().includes('› apr-k3x9m2p7qa'), () => `the request is listed; last frame:\n${term!.frame()}`)
        const seen = await reachApproval(term)
        expectAllSeen(seen, lines, what)
        for (const c of context) expect(seen, what).toContain(c)
        await waitFor(() => term!.frame().split('\n').length <= rows, () => `the frame fits ${rows} rows; last frame:\n${term!.frame()}`)
        term.keys('\r')
        await waitFor(() => src.calls.length === 1, 'the approval is made')
      })
    }
  }

  it('a terminal made shorter or narrower while a request is on it shows it again to fit, and counts only what fit as read', async () => {
    const sql = ['alter table payroll rename to gone;', ...filler.slice(0, 12), 'select 1'].join('\n')
    const src = source([{request: sample({sql, recent: []}), state: 'pending'}])
    term = renderIn(<ApprovalsApp source={src} reviewer="bob@example.com" now={() => NOW} refreshMs={600_000} />, 120, 60)
    await waitFor(() => term!.frame().includes('› apr-k3x9m2p7qa'), 'the request is listed')
    await waitFor(() => term!.frame().includes('alter table payroll'), 'the text is shown')
    // Shrunk before anything was approved: what is on screen now is what the terminal shows.
    const from = term.frameCount()
    term.resize(60, 22)
    await waitFor(() => term!.frameCount() > from && term!.frame().split('\n').length <= 22, () => `the screen is drawn again to fit; last frame:\n${term!.frame()}`)
    for (const line of term.screen()) expect([...line].length, line).toBeLessThanOrEqual(60)
    // Rows cut at the old width would be truncated by the terminal: nothing on screen ends in an ellipsis it did not write.
    expect(term.screen().join('\n')).not.toMatch(/…│/)
  })
})
