import {stripVTControlCharacters} from 'node:util'
import {render} from 'ink-testing-library'
import {afterEach, beforeAll, describe, expect, it} from 'vitest'
import type {DecideInput} from '../../src/approvals/review.js'
import {requestDigest} from '../../src/approvals/store.js'
import type {ApprovalRequest, RequestView} from '../../src/approvals/types.js'
import {ApprovalsApp} from '../../src/tui/approvals/App.js'
import type {ApprovalsSource} from '../../src/tui/approvals/state.js'
import {highlightSql} from '../../src/tui/highlight.js'
import {Chalk} from 'chalk'
import {waitFor} from '../helpers/wait.js'
import {loadParser} from '../../src/sql/parser.js'
import {NOW, sampleRequest} from './sample-request.js'

const pending = (r: ApprovalRequest): RequestView => ({request: r, state: 'pending'})
/** The digest of the sample request, as a decision on it carries what the reviewer read. */
const read = (r: ApprovalRequest = sampleRequest()) => requestDigest(r)

/** An in-memory reviewer backend: decisions remove the request, as the real bucket does. */
function fakeSource(initial: RequestView[], fail?: string): ApprovalsSource & {calls: DecideInput[]; loads: number} {
  let views = initial
  const src = {
    calls: [] as DecideInput[],
    loads: 0,
    async load() {
      src.loads++
      return views
    },
    async decide(input: DecideInput) {
      src.calls.push(input)
      if (fail) throw new Error(fail)
      views = views.filter((v) => v.request.id !== input.id)
      return `${input.action} ${input.id} done`
    },
  }
  return src
}

let instance: ReturnType<typeof render> | undefined
afterEach(() => instance?.unmount())

function start(source: ApprovalsSource, refreshMs = 60_000) {
  instance = render(<ApprovalsApp source={source} reviewer="bob@example.com" now={() => NOW} refreshMs={refreshMs} />)
  return instance
}

const frame = () => stripVTControlCharacters(instance?.lastFrame() ?? '')

/** Waits for the next frame that satisfies `ok`, instead of asserting right after input (ink-testing-library #25). */
async function until(ok: (f: string) => boolean): Promise<string> {
  return waitFor(() => ok(frame()) && frame(), () => `a frame matches; last frame:\n${frame()}`, {timeoutMs: 5000, intervalMs: 10})
}

async function press(keys: string, ok: (f: string) => boolean) {
  instance!.stdin.write(keys)
  return until(ok)
}

describe('dbgate approve (TUI)', () => {
  const two = () => [pending(sampleRequest()), pending(sampleRequest({id: 'apr-second2222', requester: {...sampleRequest().requester, subject: 'dave', email: 'dave@example.com'}, sql: 'alter table orders add column note text', windows: false}))]

  it('lists pending requests and shows the selected one with its rule, SQL, context and the keys', async () => {
    start(fakeSource(two()))
    const f = await until((x) => x.includes('apr-k3x9m2p7qa'))
    expect(f).toMatch(/dbgate approvals · bob@example.com · 2 pending/)
    expect(f).toMatch(/› apr-k3x9m2p7qa\s+alice@example.com\s+prod\s+ddl\s+1m35s\s+13m25s/)
    expect(f).toMatch(/apr-second2222\s+dave@example.com/)
    expect(f).toMatch(/rule default.ddl-approval: schema changes need a second pair of eyes/)
    expect(f).toMatch(/create index concurrently orders_status on orders \(status\)/)
    expect(f).toMatch(/Earlier in this session:[\s│]*✓ select count\(\*\) from orders where status = 'new'/)
    expect(f).toMatch(/a approve · d deny · w window · r refresh · \/ filter · q quit/)
  })

  it('moves with j/k and arrows', async () => {
    start(fakeSource(two()))
    await until((x) => x.includes('› apr-k3x9m2p7qa'))
    let f = await press('j', (x) => x.includes('› apr-second2222'))
    expect(f).toMatch(/alter table orders add column note text/)
    f = await press('k', (x) => x.includes('› apr-k3x9m2p7qa'))
    expect(f).toMatch(/create index concurrently/)
    await press('\u001B[B', (x) => x.includes('› apr-second2222'))
    await press('\u001B[A', (x) => x.includes('› apr-k3x9m2p7qa'))
  })

  it('asks before approving with a, takes an optional reason, and drops the request from the list', async () => {
    const src = fakeSource(two())
    start(src)
    await until((x) => x.includes('› apr-k3x9m2p7qa'))
    let f = await press('a', (x) => x.includes('Approve apr-k3x9m2p7qa for alice@example.com? Reason (optional):'))
    expect(f).toMatch(/enter approve · esc cancel/)
    expect(src.calls).toEqual([])
    // Esc takes it back: nothing was decided.
    await press('\u001B', (x) => x.includes('a approve · d deny'))
    expect(src.calls).toEqual([])
    await press('a', (x) => x.includes('Reason (optional):'))
    await press('ticket OPS-42', (x) => x.includes('Reason (optional): ticket OPS-42'))
    f = await press('\r', (x) => x.includes('✓ approve apr-k3x9m2p7qa done'))
    expect(src.calls).toEqual([{id: 'apr-k3x9m2p7qa', digest: read(), action: 'approve', reason: 'ticket OPS-42'}])
    await until((x) => !x.includes('› apr-k3x9m2p7qa') && x.includes('1 pending'))
    expect(f).toMatch(/✓ approve apr-k3x9m2p7qa done/)
  })

  it('approves with no reason when Enter is pressed at once', async () => {
    const src = fakeSource(two())
    start(src)
    await until((x) => x.includes('› apr-k3x9m2p7qa'))
    await press('a', (x) => x.includes('Reason (optional):'))
    await press('\r', (x) => x.includes('✓ approve apr-k3x9m2p7qa done'))
    expect(src.calls).toEqual([{id: 'apr-k3x9m2p7qa', digest: read(), action: 'approve'}])
  })

  it('marks what ran earlier in the session by how it ended: approved and run is ✓, refused is ✗', async () => {
    const recent = [
      {sql: 'create index orders_placed_at_idx on orders (placed_at)', decision: 'approved', outcome: 'ok', at: NOW.toISOString()},
      {sql: 'drop table customers', decision: 'deny', outcome: 'error', at: NOW.toISOString()},
      {sql: 'alter table orders drop column note', decision: 'approval_denied', outcome: 'error', at: NOW.toISOString()},
      {sql: 'select 1/0', decision: 'allow', outcome: 'error', at: NOW.toISOString()},
    ]
    start(fakeSource([pending(sampleRequest({recent}))]))
    const f = await until((x) => x.includes('Earlier in this session'))
    expect(f).toMatch(/✓ create index orders_placed_at_idx/)
    expect(f).toMatch(/✗ drop table customers/)
    expect(f).toMatch(/✗ alter table orders drop column note/)
    expect(f).toMatch(/! select 1\/0/)
  })

  it('shows warnings raised while it runs on the screen, instead of printing over it', async () => {
    const warnings = ['The OS keychain is turned off (DBGATE_KEYRING=off). Your tokens are stored in plain text in /x/tokens/a.json']
    const src = {...fakeSource(two()), takeWarnings: () => warnings.splice(0)}
    start(src)
    const f = await until((x) => x.includes('Warning: The OS keychain is turned off'))
    expect(f.split('\n')[1]).toMatch(/^Warning: The OS keychain is turned off/)
    expect(f).toMatch(/› apr-k3x9m2p7qa/)
  })

  it('asks for a reason before denying, and refuses an empty one', async () => {
    const src = fakeSource(two())
    start(src)
    await until((x) => x.includes('› apr-k3x9m2p7qa'))
    await press('d', (x) => x.includes('Reason for denying:'))
    expect(frame()).toMatch(/enter confirm · esc cancel/)
    await press('\r', (x) => x.includes('A denial needs a reason'))
    expect(src.calls).toEqual([])
    await press('d', (x) => x.includes('Reason for denying:'))
    await press('not during the sale', (x) => x.includes('Reason for denying: not during the sale'))
    await press('\r', (x) => x.includes('✓ deny apr-k3x9m2p7qa done'))
    expect(src.calls).toEqual([{id: 'apr-k3x9m2p7qa', digest: read(), action: 'deny', reason: 'not during the sale'}])
  })

  it('takes a pasted reason that ends in a newline as typed and confirmed', async () => {
    const src = fakeSource(two())
    start(src)
    await until((x) => x.includes('› apr-k3x9m2p7qa'))
    await press('d', (x) => x.includes('Reason for denying:'))
    await press('pasted reason\r', (x) => x.includes('✓ deny apr-k3x9m2p7qa done'))
    expect(src.calls).toEqual([{id: 'apr-k3x9m2p7qa', digest: read(), action: 'deny', reason: 'pasted reason'}])
  })

  it('grants a window with w where the target allows it, and says so where it does not', async () => {
    const src = fakeSource(two())
    start(src)
    await until((x) => x.includes('› apr-k3x9m2p7qa'))
    await press('w', (x) => x.includes('Window length (e.g. 30m, 2h): 30m'))
    // What the window lets through beyond the request read is said where its length is typed.
    expect(frame().replace(/\s+/g, ' ')).toMatch(/A window lets every ddl statement that rule default\.ddl-approval holds .* run without asking, from alice@example\.com through the same tunnel, until it closes: not only apr-k3x9m2p7qa/)
    await press('\r', (x) => x.includes('✓ window apr-k3x9m2p7qa done'))
    expect(src.calls).toEqual([{id: 'apr-k3x9m2p7qa', digest: read(), action: 'window', windowMs: 30 * 60_000}])
    await until((x) => x.includes('› apr-second2222'))
    await press('w', (x) => x.includes('does not allow windows'))
    expect(src.calls).toHaveLength(1)
  })

  it('filters with /', async () => {
    start(fakeSource(two()))
    await until((x) => x.includes('2 pending'))
    await press('/', (x) => x.includes('Filter:'))
    await press('dave', (x) => x.includes('Filter: dave'))
    const f = await press('\r', (x) => x.includes('filter: dave'))
    expect(f).toMatch(/1 pending/)
    expect(f).not.toMatch(/apr-k3x9m2p7qa/)
    expect(f).toMatch(/› apr-second2222/)
  })

  it('shows why a decision failed, e.g. when another reviewer won', async () => {
    start(fakeSource(two(), 'apr-k3x9m2p7qa was already decided: erin@example.com approved it at 2026-11-22T09:59:58Z.'))
    await until((x) => x.includes('› apr-k3x9m2p7qa'))
    await press('a', (x) => x.includes('Reason (optional):'))
    const f = await press('\r', (x) => x.includes('✗ apr-k3x9m2p7qa was already decided'))
    expect(f).toMatch(/erin@example.com approved it/)
  })

  it('closes a decision prompt whose request left the list or changed, instead of deciding the request the selection falls to', async () => {
    for (const [key, typed, change] of [
      ['a', 'ok', 'withdrawn'],
      ['d', 'no', 'withdrawn'],
      ['w', '', 'withdrawn'],
      ['a', 'ok', 'changed'],
      ['d', 'no', 'changed'],
      ['w', '', 'changed'],
    ] as const) {
      const views = two()
      const src = {...fakeSource([]), load: async () => views}
      start(src, 30)
      await until((x) => x.includes('› apr-k3x9m2p7qa'))
      await press(key, (x) => /Reason|Window length/.test(x))
      if (typed) await press(typed, (x) => x.includes(`: ${typed}`))
      if (change === 'withdrawn') views.shift()
      else views[0] = pending(sampleRequest({sql: 'alter table orders rename to gone'}))
      const message = change === 'withdrawn' ? 'apr-k3x9m2p7qa is no longer pending' : 'apr-k3x9m2p7qa changed since you read it'
      await until((x) => x.replace(/\s+/g, ' ').includes(`${message}`) && x.replace(/\s+/g, ' ').includes('nothing was decided'))
      instance!.stdin.write('\r')
      await new Promise((r) => setTimeout(r, 100))
      expect(src.calls).toEqual([])
      instance!.unmount()
    }
  })

  it('pages a text longer than the screen, says which part is shown, and approves only once all of it was on screen', async () => {
    const filler = Array.from({length: 60}, (_, i) => `-- create index concurrently orders_status_${i} on orders (status)`).join('\n')
    const cases: [string, Partial<ApprovalRequest>][] = [
      ['a statement above many lines of comments', {sql: `alter table payroll rename to gone;\n${filler}\ncreate index concurrently orders_status on orders (status)`}],
      ['a statement after one very long line', {sql: `select 1 ${' '.repeat(6000)}; alter table payroll rename to gone`}],
      ['a statement with many bound values', {sql: 'update payroll set amount = $1 where id = $2', params: ['1', `${'9'.repeat(3000)}`]}],
    ]
    for (const [what, over] of cases) {
      const src = fakeSource([pending(sampleRequest(over))])
      start(src)
      let f = await until((x) => x.includes('› apr-k3x9m2p7qa'))
      const total = Number(/lines 1–20 of (\d+)/.exec(f)?.[1])
      expect(total, what).toBeGreaterThan(20)
      // The frame fits a terminal: the text is paged, never pushed off the top of the screen.
      expect(f.split('\n').length, what).toBeLessThan(50)
      expect(f, what).toMatch(/space\/b page/)
      if (what.startsWith('a statement above')) expect(f).toMatch(/alter table payroll rename to gone;/)
      f = await press('a', (x) => x.includes('Read all of apr-k3x9m2p7qa before approving it'))
      expect(f.replace(/\s+/g, ' ')).toContain(`it takes ${total} lines and you have seen 20`)
      await press('w', (x) => x.includes('Read all of apr-k3x9m2p7qa'))
      // Page to the end: every line has been on screen, and approving is asked as usual.
      for (let shown = 20; shown < total; shown += 20) await press(' ', (x) => x.includes(`–${Math.min(total, shown + 20)} of ${total}`))
      if (what.startsWith('a statement after')) expect(frame()).toMatch(/alter table payroll rename to gone/)
      if (what.startsWith('a statement with')) expect(frame()).toMatch(/9']/)
      await press('b', (x) => x.includes(`of ${total}`))
      await press('a', (x) => x.includes('Approve apr-k3x9m2p7qa for alice@example.com? Reason (optional):'))
      await press('\r', (x) => x.includes('✓ approve apr-k3x9m2p7qa done'))
      expect(src.calls).toHaveLength(1)
      instance!.unmount()
    }
  })

  it('says how many statements a text holds and which, by the parser, above the text', async () => {
    start(fakeSource([pending(sampleRequest({sql: 'select 1; alter table payroll rename to gone', statements: [{text: 'select 1', class: 'read', command: 'select', action: 'allow', ruleId: 'default.read'}, {text: 'alter table payroll rename to gone', class: 'ddl', command: 'alter table', action: 'require_approval', ruleId: 'default.ddl-approval'}]}))]))
    const f = await until((x) => x.includes('› apr-k3x9m2p7qa'))
    expect(f).toMatch(/2 statements: select; alter table · 1 line/)
  })

  it('refreshes by itself', async () => {
    const views: RequestView[] = []
    const src: ApprovalsSource = {load: async () => views, decide: async () => ''}
    start(src, 50)
    await until((x) => x.includes('No pending requests'))
    views.push(pending(sampleRequest()))
    await until((x) => x.includes('› apr-k3x9m2p7qa'))
  })
})

describe('highlightSql', () => {
  beforeAll(loadParser)

  it('colours keywords, strings and numbers, and keeps the text', () => {
    const c = new Chalk({level: 1})
    const out = highlightSql("delete from t where name = 'x' and id = 42", c)
    expect(stripVTControlCharacters(out)).toBe("delete from t where name = 'x' and id = 42")
    expect(out).toContain(c.red.bold('delete'))
    expect(out).toContain(c.blue.bold('from'))
    expect(out).toContain(c.green("'x'"))
    expect(out).toContain(c.cyan('42'))
  })

  it('colours by where PostgreSQL ends strings and comments, so a statement that runs is never painted as a string or a comment', () => {
    const c = new Chalk({level: 1})
    // Each text runs 'alter table payroll rename to gone' on the server; a pattern of our own read
    // it as part of a string (E'\\'', a dollar quote holding a quote) or of a comment ('--' in a
    // dollar quote or a string).
    for (const sql of [
      "select E'\\''; alter table payroll rename to gone; -- '",
      "select $$ ' $$; alter table payroll rename to gone; -- '",
      "select $q$--$q$; alter table payroll rename to gone",
      "select '--'; alter table payroll rename to gone",
      "select $$ /* $$; alter table payroll rename to gone; -- */",
    ]) {
      const out = highlightSql(sql, c)
      expect(stripVTControlCharacters(out), sql).toBe(sql)
      expect(out, sql).toContain(c.red.bold('alter'))
      expect(out, sql).not.toContain(c.green("' $$; alter"))
    }
    // Nested comments are one comment to the server: nothing in them is painted as code.
    const nested = highlightSql('/* a /* b */ alter table payroll rename to gone; */ select 1', c)
    expect(nested).toContain(c.gray('/* a /* b */ alter table payroll rename to gone; */'))
    // A text the scanner cannot read gets no colour rather than a guess.
    expect(highlightSql("select 1; /* alter table payroll rename to gone", c)).toBe("select 1; /* alter table payroll rename to gone")
  })
})
