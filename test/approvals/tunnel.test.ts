import {mkdtempSync} from 'node:fs'
import net from 'node:net'
import {tmpdir} from 'node:os'
import {stripVTControlCharacters} from 'node:util'
import path from 'node:path'
import pg from 'pg'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decide} from '../../src/approvals/review.js'
import {seal} from '../../src/approvals/seal.js'
import {formatRequests} from '../../src/approvals/cli.js'
import {Detail} from '../../src/tui/approvals/App.js'
import {render} from 'ink-testing-library'
import {createElement} from 'react'
import {decisionKey, listRequests, readOutcome, readRequest, requestDigest} from '../../src/approvals/store.js'
import type {ApprovalDecision, ApprovalRequest, DecisionAction, RequestView} from '../../src/approvals/types.js'
import {requestRow} from '../../src/approvals/format.js'
import {SessionReader} from '../../src/audit/read.js'
import {produceReport} from '../../src/report/produce.js'
import {renderTimeline} from '../../src/audit/render.js'
import type {AuditEvent, StatementData} from '../../src/audit/events.js'
import {openBucket, type Bucket} from '../../src/bucket/index.js'
import {buildTunnelHooks} from '../../src/pipeline/index.js'
import type {DbgateConfig} from '../../src/config/types.js'
import {getIdentity} from '../../src/identity/session.js'
import {openTokenStore} from '../../src/identity/token-store.js'
import {encodeCancelRequest} from '../../src/wire/frontend.js'
import {loadedConfig, openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {people, tempBucketUrl, watchNotices, type People} from './helpers.js'
import {waitFor} from '../helpers/wait.js'
import {codes, errorOf} from '../helpers/raw-client.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m', '  windows: true'].join('\n')

/**
 * Approvals end to end: a real OIDC provider, real PostgreSQL, node-postgres as the waiting
 * client, and reviewers deciding through the same core the CLI and the TUI call.
 */
describe('approvals through the tunnel', () => {
  let p: People
  let db: UpstreamInfo
  let bucketUrl: string
  let bucket: Bucket
  let config: DbgateConfig
  const tunnels: PipelineTunnel[] = []

  async function tunnelAs(user: string, target = TARGET) {
    const t = await openPipelineTunnel(db, target, {
      top: `bucket: ${bucketUrl}`,
      identity: {issuer: p.f.dev.issuer, clientId: p.f.dev.cliClientId, env: p.env(user)},
      hooks: (ctx) => buildTunnelHooks({...ctx, approvalPollMs: 100}),
    })
    tunnels.push(t)
    return t
  }

  /** A decision sealed properly with `user`'s fresh token, written past every check the CLI makes. */
  async function sealedBy(user: string, request: ApprovalRequest, action: DecisionAction, windowMs?: number): Promise<ApprovalDecision> {
    const env = p.env(user)
    const session = await (await getIdentity(p.f.config, {env, store: openTokenStore({env})})).refresh()
    const digest = requestDigest(request)
    const decidedAt = new Date().toISOString()
    const {subject, email, groups} = session.identity
    const window = windowMs === undefined ? {} : {windowMs}
    const sealed = {requestId: request.id, requestDigest: digest, action, ...window, decidedAt, token: session.token}
    return {v: 1, requestId: request.id, action, reviewer: {subject, email, groups}, ...window, decidedAt, requestDigest: digest, proof: seal(request.sealKey, JSON.stringify(sealed), {requestId: request.id, requestDigest: digest})}
  }

  const review = async (user: string) => ({bucket, config, reviewer: await p.reviewer(user)})
  const tableCount = (name: string) => withClient(db.url, async (c) => Number((await c.query('select count(*) from pg_class where relname = $1', [name])).rows[0].count))

  beforeAll(async () => {
    p = await people()
    db = await createTestDatabase()
    bucketUrl = tempBucketUrl()
    bucket = openBucket(bucketUrl)
    config = loadedConfig(db, TARGET, `identity:\n  issuer: ${p.f.dev.issuer}\n  clientId: ${p.f.dev.cliClientId}\nbucket: ${bucketUrl}`).config
    for (const u of ['alice', 'bob', 'carol', 'dave', 'erin']) await p.login(u)
  })
  afterAll(async () => {
    await Promise.all(tunnels.map((t) => t.close().catch(() => {})))
    await p.close()
  })

  it('holds a DDL statement until a reviewer approves, then runs it exactly once', async () => {
    const t = await tunnelAs('alice')
    const c = await t.client()
    await c.query('select 1')
    const w = watchNotices(c)
    const held = c.query('create table approved_once (id int)')
    const id = await w.approvalId()
    expect(w.notices[0]).toMatch(/by a member of dba.*dbgate approve/)
    expect(await tableCount('approved_once')).toBe(0)

    const request = (await readRequest(bucket, id))!
    expect(request).toMatchObject({target: 'app', class: 'ddl', requester: {email: 'alice@example.com'}, sql: 'create table approved_once (id int)'})
    expect(request.recent.map((r) => r.sql)).toEqual(['select 1'])
    expect(JSON.stringify(request)).not.toMatch(/eyJ/)

    const result = await decide(await review('bob'), {id, action: 'approve', reason: 'schema change ticket 42'})
    expect(result.decision.reviewer.email).toBe('bob@example.com')
    await held
    expect(w.notices.at(-1)).toMatch(new RegExp(`approval ${id} granted by bob@example.com`))
    expect(await tableCount('approved_once')).toBe(1)
    // Later messages were held in order behind the approved statement, not run early or twice.
    await c.query('insert into approved_once values (1)')
    expect((await c.query('select count(*)::int as n from approved_once')).rows).toEqual([{n: 1}])
    expect(await readOutcome(bucket, id)).toMatchObject({state: 'approved', reviewer: 'bob@example.com'})
    // No token reaches the bucket in clear: only the sealed box, which this tunnel alone could open.
    const raw = (await bucket.get(decisionKey(id))).body.toString()
    expect(raw).not.toMatch(/eyJ/)
  })

  it('fails a denied statement with the reviewer and their reason', async () => {
    const t = tunnels[0]!
    const c = await t.client()
    const w = watchNotices(c)
    const held = c.query('alter table approved_once add column note text').catch((e: Error & {code?: string}) => e)
    const id = await w.approvalId()
    await decide(await review('bob'), {id, action: 'deny', reason: 'not during the sale'})
    const err = (await held) as Error & {code?: string}
    expect(err.message).toBe(`dbgate: approval ${id} denied by bob@example.com: not during the sale`)
    expect(err.code).toBe('42501')
    const columns = await withClient(db.url, async (x) => (await x.query("select attname from pg_attribute where attrelid = 'approved_once'::regclass and attnum > 0")).rows.map((r) => r.attname))
    expect(columns).toEqual(['id'])
  })

  it('refuses a decision file written by hand, records it, and still takes a real one', async () => {
    const t = tunnels[0]!
    const c = await t.client()
    const w = watchNotices(c)
    const held = c.query('create table after_forgery (id int)')
    const id = await w.approvalId()
    const request = (await readRequest(bucket, id))!
    const forged: ApprovalDecision = {
      v: 1,
      requestId: id,
      action: 'approve',
      reviewer: {subject: 'bob', email: 'bob@example.com', groups: ['dba']},
      decidedAt: new Date().toISOString(),
      requestDigest: requestDigest(request),
      proof: {alg: 'X25519-HKDF-SHA256-A256GCM', epk: request.sealKey, iv: 'AAAAAAAAAAAAAAAA', ct: 'AAAA', tag: 'AAAAAAAAAAAAAAAAAAAAAA=='},
    }
    await bucket.put(decisionKey(id), JSON.stringify(forged), {ifNoneMatch: true})
    await waitFor(() => w.notices.some((n) => /claiming to be from bob@example.com was refused/.test(n)), 'the forged decision is refused')
    expect(await tableCount('after_forgery')).toBe(0)
    // The forgery is moved aside, so the real reviewer can still decide once it is gone.
    await waitFor(
      async () =>
        decide(await review('erin'), {id, action: 'approve'}).then(
          () => true,
          (e: {code?: string}) => {
            if (e.code !== 'APPROVAL_ALREADY_DECIDED') throw e
            return false
          },
        ),
      'the forgery is moved aside and erin can decide',
      {intervalMs: 100},
    )
    await held
    expect(await tableCount('after_forgery')).toBe(1)
  })

  it('refuses self-approval, at the CLI and in the tunnel even when the CLI is bypassed', async () => {
    const t = await tunnelAs('dave')
    const c = await t.client()
    const w = watchNotices(c)
    const held = c.query('create table self_approved (id int)').catch((e: Error) => e)
    const id = await w.approvalId()
    await expect(decide(await review('dave'), {id, action: 'approve'})).rejects.toMatchObject({code: 'APPROVAL_SELF', message: /nobody can decide their own request/})

    // Dave writes the decision himself, sealed properly with his own fresh token.
    const own = await sealedBy('dave', (await readRequest(bucket, id))!, 'approve')
    await bucket.put(decisionKey(id), JSON.stringify(own), {ifNoneMatch: true})
    await waitFor(() => w.notices.some((n) => /cannot decide their own request/.test(n)), 'the self-approval is refused')
    expect(await tableCount('self_approved')).toBe(0)

    // Carol is signed in but not a reviewer: the CLI says so.
    await expect(decide(await review('carol'), {id, action: 'approve'})).rejects.toMatchObject({code: 'APPROVAL_NOT_A_REVIEWER'})
    const s = net.connect({host: '127.0.0.1', port: t.info.port})
    await new Promise((r) => s.once('connect', r))
    const {processID, secretKey} = c as unknown as {processID: number; secretKey: number}
    s.end(encodeCancelRequest(processID, secretKey))
    expect(await held).toMatchObject({code: '57014', message: `dbgate: approval ${id} withdrawn: the statement was cancelled while waiting`})
  })

  it('shows the reviewer every statement it holds: terminal controls in the SQL cannot hide or reorder a part of it', async () => {
    // Each sequence, left in a comment, would hide (conceal, black on black, erase, overwrite,
    // a hyperlink), move (cursor up, a line separator) or reorder (bidi) the statement after it on
    // the reviewer's terminal, while PostgreSQL runs it all.
    const hiders = ['\x1b[8m', '\x1b[30;40m', '\x1b[2K\x1b[1A', '\x1b]8;;https://example.com\x07', '\u009b8m', '\r', '\b'.repeat(40), '\u202e', '\u2028', '\u200b\ufeff', '\x00'.slice(1) + '\x7f']
    const hidden = hiders.map((_, i) => `create table hidden_${i} (id int)`)
    const sql = ['create table shown (id int)', ...hiders.map((h, i) => `/*${h}*/ ${hidden[i]}; /*\x1b[0m\u202c*/`)].join('; ')
    const c = await (await tunnelAs('alice')).client()
    await c.query('select 1 /*\x1b[8m*/, 2 as hidden_earlier')
    const w = watchNotices(c)
    const held = c.query(sql).catch((e: Error) => e)
    const id = await w.approvalId()
    const view = {request: (await readRequest(bucket, id))!, state: 'pending' as const}
    expect(view.request.sql).toBe(sql)

    // The TUI's detail pane: every held statement is there in plain sight, and the only SGR
    // sequences on the screen are the highlighter's own colours.
    const screen = render(createElement(Detail, {view, now: new Date()}))
    const frame = screen.lastFrame() ?? ''
    screen.unmount()
    const plain = stripVTControlCharacters(frame).replace(/[\s│]+/g, ' ')
    for (const text of [...hidden, 'hidden_earlier']) expect(plain).toContain(text)
    const foreign = frame.replace(/\x1b\[(?:1|22|31|32|34|36|39|90)m/g, '').match(/[^\P{C}\n]|[\p{Zl}\p{Zp}]/gu)
    expect(foreign).toBeNull()
    // The list, on a terminal and piped.
    for (const tty of [true, false]) expect(formatRequests([view], tty).replace(/\x1b\[(?:1|22)m/g, '').match(/[^\P{C}\n\t]|[\p{Zl}\p{Zp}]/gu)).toBeNull()

    await decide(await review('bob'), {id, action: 'deny', reason: 'hidden statements'})
    expect(await held).toMatchObject({code: '42501'})
    for (let i = 0; i < hiders.length; i++) expect(await tableCount(`hidden_${i}`)).toBe(0)
  })

  it('refuses a properly sealed decision by a non-reviewer, and an approval of an altered request', async () => {
    const t = tunnels[0]!
    const c = await t.client()
    const w = watchNotices(c)
    const held = c.query('create table tampered (id int)').catch((e: Error) => e)
    const id = await w.approvalId()
    const request = (await readRequest(bucket, id))!
    await bucket.put(decisionKey(id), JSON.stringify(await sealedBy('carol', request, 'approve')), {ifNoneMatch: true})
    await waitFor(() => w.notices.some((n) => /carol@example.com \(groups: auditors\) is not in a reviewer group of app \(dba\)/.test(n)), 'the non-reviewer decision is refused')

    // Someone rewrites the request so the reviewer reads harmless SQL, and bob approves what he read.
    const shown = {...request, sql: 'create table harmless (id int)'}
    await waitFor(() => w.notices.filter((n) => n.includes('was refused')).length === 1, 'one refusal notice')
    await waitFor(
      async () =>
        bucket.put(decisionKey(id), JSON.stringify(await sealedBy('bob', shown, 'approve')), {ifNoneMatch: true}).then(
          () => true,
          () => false,
        ),
      "carol's decision is moved aside and bob's can be written",
      {intervalMs: 100},
    )
    await waitFor(() => w.notices.some((n) => /request was altered in the bucket/.test(n)), 'the altered request is refused')
    expect(await tableCount('tampered')).toBe(0)
    const s = net.connect({host: '127.0.0.1', port: t.info.port})
    await new Promise((r) => s.once('connect', r))
    const {processID, secretKey} = c as unknown as {processID: number; secretKey: number}
    s.end(encodeCancelRequest(processID, secretKey))
    expect(await held).toMatchObject({code: '57014'})
  })

  it('withdraws the request when the client cancels (Ctrl-C), and reviewers see it', async () => {
    const t = tunnels[0]!
    const c = await t.client()
    const w = watchNotices(c)
    const held = c.query('create table cancelled (id int)').catch((e: Error) => e)
    const id = await w.approvalId()
    const s = net.connect({host: '127.0.0.1', port: t.info.port})
    await new Promise((r) => s.once('connect', r))
    const {processID, secretKey} = c as unknown as {processID: number; secretKey: number}
    s.end(encodeCancelRequest(processID, secretKey))
    expect(await held).toMatchObject({code: '57014'})
    expect((await readOutcome(bucket, id))?.state).toBe('withdrawn')
    expect((await listRequests(bucket)).find((v) => v.request.id === id)?.state).toBe('withdrawn')
    await expect(decide(await review('bob'), {id, action: 'approve'})).rejects.toMatchObject({code: 'APPROVAL_NOT_PENDING'})
    expect((await c.query('select 2 as still')).rows).toEqual([{still: 2}])
    expect(await tableCount('cancelled')).toBe(0)
  })

  it("refuses an approved statement when another of the person's sessions committed a change while it waited", async () => {
    // The approval covered what the statement ran against the schema as it was; a change committed
    // since (here a write whose trigger may run DDL) may have changed that (docs/policy.md).
    await withClient(db.url, (x) =>
      x.query(`
        create table audited (id int);
        create function audit_row() returns trigger language plpgsql as $f$ begin return new; end $f$;
        create trigger audited_row before insert on audited for each row execute function audit_row();
      `),
    )
    const t = tunnels[0]!
    const c = await t.client()
    const other = await t.client()
    const w = watchNotices(c)
    const held = c.query('create table approved_after_change (id int)').catch((e: Error & {code?: string}) => e)
    const id = await w.approvalId()
    await other.query('insert into audited values (1)')
    await decide(await review('bob'), {id, action: 'approve'})
    const err = (await held) as Error & {code?: string}
    expect(err.code).toBe('55P03')
    expect(err.message).toMatch(/committed a change to the schema while this statement waited for its approval/)
    expect(await tableCount('approved_after_change')).toBe(0)
    // Sent again, it is judged (and held) afresh.
    const w2 = watchNotices(c)
    const again = c.query('create table approved_after_change (id int)')
    const second = await w2.approvalId()
    expect(second).not.toBe(id)
    await decide(await review('bob'), {id: second, action: 'approve'})
    await again
    expect(await tableCount('approved_after_change')).toBe(1)
  })

  it('refuses an approved statement when a change was committed through another tunnel of the same person (or anyone) while it waited, or before its Bind', async () => {
    // The change gate covers one pipeline; a second `dbgate connect` (or the person's agent, or a
    // session on another gateway worker) is another, and replaced the function the reviewer read.
    await withClient(db.url, (x) => x.query('create table hit (id int); create function public.tick() returns int language sql volatile as $f$ select 1 $f$'))
    const a = await tunnelAs('alice')
    const b = await tunnelAs('alice')
    const held = async (sql: string) => {
      let id: string | undefined
      await waitFor(async () => (id = (await listRequests(bucket)).find((v) => v.request.sql === sql && !v.outcome)?.request.id) !== undefined, `${sql} is held`)
      return id!
    }
    const replace = async (body: string) => {
      const c = await b.client()
      const sql = `create or replace function public.tick() returns int language sql volatile as $f$ ${body} $f$`
      const done = c.query(sql)
      await decide(await review('erin'), {id: await held(sql), action: 'approve'})
      await done
      await c.end()
    }
    const hits = async () => (await withClient(db.url, (x) => x.query('select count(*)::int as n from public.hit'))).rows[0].n as number
    const ca = await a.client()
    const first = ca.query('select public.tick()').catch((e: Error & {code?: string}) => e)
    const id = await held('select public.tick()')
    await replace('insert into public.hit values (1) returning 1')
    await decide(await review('bob'), {id, action: 'approve'})
    expect(await first).toMatchObject({code: '55P03', message: expect.stringMatching(/committed through another dbgate session .* while this statement waited for its approval/)})
    expect(await hits()).toBe(0)

    // An approved Parse whose Bind comes after such a commit.
    const raw = await a.raw()
    raw.send(serialize.parse({text: 'select public.tick() as t'}), serialize.sync())
    await decide(await review('bob'), {id: await held('select public.tick() as t'), action: 'approve'})
    expect(codes(await raw.untilReady())).toMatch(/1Z$/)
    await replace('insert into public.hit values (2) returning 2')
    raw.send(serialize.bind({}), serialize.execute({}), serialize.sync())
    expect(errorOf(await raw.untilReady())).toMatchObject({code: '55P03', message: expect.stringMatching(/committed through another dbgate session/)})
    expect(await hits()).toBe(0)

    // Sent again, it is held again, and runs what the reviewer now reads.
    const again = ca.query('select public.tick()')
    await decide(await review('bob'), {id: await held('select public.tick()'), action: 'approve'})
    expect((await again).rowCount).toBe(1)
    expect(await hits()).toBe(1)
  })

  it('lets exactly one of two reviewers deciding at once win, and tells the other who did', async () => {
    const t = tunnels[0]!
    const c = await t.client()
    const w = watchNotices(c)
    const held = c.query('create table raced (id int)').catch((e: Error) => e)
    const id = await w.approvalId()
    const [bob, erin] = await Promise.all([review('bob'), review('erin')])
    const results = await Promise.allSettled([decide(bob, {id, action: 'approve'}), decide(erin, {id, action: 'deny', reason: 'no'})])
    const won = results.filter((r) => r.status === 'fulfilled')
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    expect(won).toHaveLength(1)
    expect(lost).toHaveLength(1)
    expect(lost[0]!.reason).toMatchObject({code: 'APPROVAL_ALREADY_DECIDED', message: /(bob|erin)@example\.com (approved|denied) it/})
    const outcome = await held
    const bobWon = results[0]!.status === 'fulfilled'
    expect(await tableCount('raced')).toBe(bobWon ? 1 : 0)
    if (!bobWon) expect(outcome).toMatchObject({message: /denied by erin@example.com: no/})
  })

  it('grants a window: later statements of the class run without asking, until it closes', async () => {
    const t = tunnels[0]!
    const c = await t.client()
    const w = watchNotices(c)
    const held = c.query('create table windowed_1 (id int)')
    const id = await w.approvalId()
    await decide(await review('bob'), {id, action: 'window', windowMs: 60_000})
    await held
    await c.query('create table windowed_2 (id int)')
    expect(w.notices.at(-1)).toMatch(new RegExp(`running under the window ${id} granted by bob@example.com`))
    expect(await tableCount('windowed_2')).toBe(1)
  })

  it('refuses a window longer than a day, and the statement keeps waiting for a decision', async () => {
    // A tunnel of its own: the window granted above covers schema changes in the first.
    const t = await tunnelAs('alice')
    const c = await t.client()
    const w = watchNotices(c)
    const held = c.query('create table window_too_long (id int)').catch((e: Error) => e)
    const id = await w.approvalId()
    for (const windowMs of [24 * 3_600_000 + 1, 1e12, 1e308]) {
      await expect(decide(await review('bob'), {id, action: 'window', windowMs})).rejects.toMatchObject({code: 'APPROVAL_BAD_INPUT', message: expect.stringMatching(/^A window may last at most 24h/)})
    }
    // Sealed by a genuine reviewer past every check the CLI makes: the tunnel refuses it too.
    await bucket.put(decisionKey(id), JSON.stringify(await sealedBy('bob', (await readRequest(bucket, id))!, 'window', 1e308)), {ifNoneMatch: true})
    await waitFor(() => w.notices.some((n) => /the window is longer than a reviewer may grant \(24 h\)/.test(n)), 'the overlong window is refused')
    expect(await tableCount('window_too_long')).toBe(0)
    const bob = await review('bob')
    await waitFor(
      () =>
        decide(bob, {id, action: 'deny', reason: 'too long'}).then(
          () => true,
          () => false,
        ),
      'the refused decision is moved aside and a denial can be written',
      {intervalMs: 100},
    )
    expect(await held).toMatchObject({message: expect.stringContaining('denied by bob@example.com: too long')})
    expect(await tableCount('window_too_long')).toBe(0)
  })

  it('keeps a window to the rule it was granted under: statements of the same class that another rule holds still ask', async () => {
    // A window granted on a schema change must not let through what the pack holds for its own
    // reason although it is DDL too: a rule or a trigger runs code on later statements.
    const c = await (await tunnelAs('alice')).client()
    const w = watchNotices(c)
    const held = c.query('create table window_scope (id int, note text)')
    const id = await w.approvalId()
    await decide(await review('bob'), {id, action: 'window', windowMs: 60_000})
    await held
    await c.query('create index window_scope_note on window_scope (note)')
    expect(w.notices.at(-1)).toMatch(new RegExp(`running under the window ${id}`))

    const others = [
      'create rule window_scope_rule as on insert to window_scope do instead nothing',
      "create trigger window_scope_trg before insert on window_scope for each row execute function window_scope_fn()",
    ]
    for (const sql of others) {
      const before = w.notices.length
      const asked = c.query(sql).catch((e: Error) => e)
      await waitFor(() => w.notices.slice(before).some((n) => /waiting for approval apr-/.test(n) || /running under the window/.test(n)), 'the statement is held or runs')
      const notice = w.notices.slice(before).find((n) => /waiting for approval|running under the window/.test(n))!
      expect(notice, sql).toMatch(/waiting for approval/)
      const other = /waiting for approval (apr-[a-z0-9]+)/.exec(notice)![1]!
      await decide(await review('bob'), {id: other, action: 'deny', reason: 'not under the window'})
      expect(await asked).toMatchObject({code: '42501'})
    }
    const made = await withClient(db.url, async (x) => (await x.query("select (select count(*) from pg_rewrite where rulename = 'window_scope_rule')::int as rules, (select count(*) from pg_trigger where tgname = 'window_scope_trg')::int as triggers")).rows[0])
    expect(made).toEqual({rules: 0, triggers: 0})
  })

  it('keeps a window to its duration: a statement parsed or bound under it is judged again once it has closed', async () => {
    // An unnamed statement (or a portal in a transaction) can be bound and executed again and again
    // without another Parse. Let through under a window, it ran long after the window closed.
    const t = await tunnelAs('alice')
    const c = await t.client()
    const w = watchNotices(c)
    const held = c.query('create table window_end (id int)')
    const id = await w.approvalId()
    await decide(await review('bob'), {id, action: 'window', windowMs: 1500})
    await held
    const indexes = async () => (await withClient(db.url, (x) => x.query("select count(*)::int as n from pg_indexes where tablename = 'window_end'"))).rows[0].n as number
    const raw = await t.raw()
    const {parse, bind, execute, sync, query} = serialize
    raw.send(parse({text: 'create index on window_end (id)'}), bind({}), execute({}), sync())
    expect(codes(await raw.untilReady())).toMatch(/^N*12N*CZ$/)
    // A transaction begun without a simple query (which would drop the unnamed statement), and a portal bound in it.
    raw.send(parse({name: 'begin', text: 'begin'}), bind({statement: 'begin'}), execute({}), bind({portal: 'later'}), sync())
    expect(codes(await raw.untilReady())).toMatch(/^N*12C2Z$/)
    expect(await indexes()).toBe(1)
    // Past the window's end (a wait, not a timing assertion).
    await new Promise((r) => setTimeout(r, 1600))
    // The window has closed: the portal and the unnamed statement are judged again. The portal's
    // Execute is held, and the reviewer denies it; that fails the transaction, where the unnamed
    // statement's Bind, judged again, is refused at once (it could not run there).
    for (const [run, said] of [
      [[execute({portal: 'later'}), sync()], /denied by bob@example.com: the window is over/],
      [[bind({}), execute({}), sync()], /requires approval \(rule default.ddl-approval\) in a transaction that has already failed/],
    ] as const) {
      const seen = raw.messages.length
      raw.send(...run)
      const asked = () => raw.messages.slice(seen).find((m) => m.code === 'N' && /waiting for approval/.test(m.body.toString()))
      await waitFor(() => asked() !== undefined || raw.messages.slice(seen).some((m) => m.code === 'Z'), 'the statement is held or answered')
      const notice = asked()
      if (notice) await decide(await review('bob'), {id: /waiting for approval (apr-[a-z0-9]+)/.exec(notice.body.toString())![1]!, action: 'deny', reason: 'the window is over'})
      expect(errorOf(await raw.untilReady())?.message).toMatch(said)
    }
    raw.send(query('rollback'))
    await raw.untilReady()
    expect(await indexes()).toBe(1)
  })

  it('approves a PREPARE so that later EXECUTEs are judged as what it prepared, and never approves a named Parse', async () => {
    await withClient(db.url, (x) => x.query('create table items (id int, name text); insert into items values (1, $$a$$)'))
    const t = await tunnelAs('alice', `${TARGET}\nrules:\n  - id: updates-need-review\n    match: {command: update}\n    action: require_approval`)
    const c = await t.client()
    const w = watchNotices(c)
    const prepared = c.query('prepare rename_item as update items set name = $1 where id = $2')
    await decide(await review('bob'), {id: await w.approvalId(), action: 'approve'})
    await prepared
    const executed = c.query("execute rename_item('b', 1)").catch((e: Error) => e)
    await waitFor(() => w.notices.filter((n) => n.includes('waiting for approval')).length === 2, 'both statements wait for approval')
    const views = await listRequests(bucket)
    const second = views.find((v) => v.request.sql === "execute rename_item('b', 1)")!
    expect(second.request).toMatchObject({class: 'write', ruleId: 'updates-need-review'})
    await decide(await review('bob'), {id: second.request.id, action: 'deny', reason: 'no renames today'})
    expect(await executed).toMatchObject({message: /denied by bob@example.com: no renames today/})

    const named = await c.query({name: 'mk', text: 'create table named_ddl (id int)'}).catch((e: Error & {hint?: string}) => e)
    expect(named).toMatchObject({code: '42501', message: /cannot be approved as the named prepared statement "mk"/, hint: /simple query or an unnamed statement/})
    expect(await tableCount('named_ddl')).toBe(0)
  })

  it('holds a Bind pipelined after a Describe of its statement (libpq pipeline mode), rather than waiting for ever', async () => {
    // The Bind is judged once the server has answered what came before it; the server keeps its
    // answer to the Describe until a Sync or Flush the client sends only after the Bind.
    await withClient(db.url, (x) => x.query("create table pipe_accounts (id int, owner text); insert into pipe_accounts values (1, 'ann'), (2, 'ben')"))
    const t = await tunnelAs('alice', `${TARGET}\nrules:\n  - id: pipe-updates-need-review\n    match: {command: update}\n    action: require_approval`)
    const raw = await t.raw()
    const sql = 'update pipe_accounts set owner = $1 where id = $2'
    const {parse, describe: describeMsg, bind, execute, sync} = serialize
    for (const [name, owner] of [['pp', 'carl'], ['', 'dora']] as const) {
      raw.send(parse({name, text: sql}), describeMsg({type: 'S', name}), bind({statement: name, values: [owner, '1']}), describeMsg({type: 'P'}), execute({}), sync())
      let request: ApprovalRequest | undefined
      await waitFor(async () => (request = (await listRequests(bucket)).find((v) => v.request.sql === sql && v.state === 'pending')?.request) !== undefined, 'the Bind is held for a reviewer')
      expect(request!.params).toEqual([owner, '1'])
      await decide(await review('bob'), {id: request!.id, action: 'approve'})
      expect(codes(await raw.untilReady())).toMatch(/^1tnN*2N*nCZ$/)
      expect((await withClient(db.url, (x) => x.query('select owner from pipe_accounts where id = 1'))).rows[0].owner).toBe(owner)
    }
  })

  it('holds a statement with bind parameters at its Bind, with the values it runs with, and each Bind again', async () => {
    await withClient(db.url, (x) => x.query("create sequence accounts_seq; select setval('accounts_seq', 1000); create table accounts (id int, owner text); insert into accounts values (1, 'ann'), (2, 'ben')"))
    const t = await tunnelAs('alice', `${TARGET}\nrules:\n  - id: account-updates-need-review\n    match: {command: update}\n    action: require_approval`)
    const c = await t.client()
    const owners = async () => (await withClient(db.url, (x) => x.query("select string_agg(owner, ',' order by id) as owners from accounts"))).rows[0].owners as string
    /** The pending request of `sql` once filed: what the reviewer reads. */
    const seen = new Set<string>()
    const pendingOf = async (sql: string) => {
      let found: ApprovalRequest | undefined
      await waitFor(async () => (found = (await listRequests(bucket)).find((v) => v.request.sql === sql && !seen.has(v.request.id) && v.state === 'pending')?.request) !== undefined, `the request for ${sql}`)
      seen.add(found!.id)
      return found!
    }
    // What a driver sends for a query with values: Parse with $n, then Bind with the values. Denied: nothing runs.
    const PARAMETERIZED: [string, unknown[]][] = [
      ["select setval('accounts_seq', $1)", [1]],
      ["select setval('accounts_seq', $1::bigint + 0, true)", [1]],
      ['update accounts set owner = $1 where id = $2', ['mallory', 1]],
      ['update accounts set owner = $1 where id > $2', ['mallory', 0]],
      ["update accounts set owner = 'mallory' where id = any($1::int[])", ['{1,2}']],
    ]
    for (const [sql, values] of PARAMETERIZED) {
      const out = c.query(sql, values).catch((e: Error) => e)
      const request = await pendingOf(sql)
      expect(request.params, sql).toEqual(values.map(String))
      // The list and the interactive view show the values beside the text.
      expect(requestRow({request, state: 'pending'} as RequestView, new Date()).sql, sql).toContain(`$1 = '${String(values[0])}'`)
      const screen = render(createElement(Detail, {view: {request, state: 'pending'} as RequestView, now: new Date()}))
      expect(stripVTControlCharacters(screen.lastFrame() ?? '').replace(/[\s│]+/g, ' '), sql).toContain(`with the values [$1 = '${String(values[0])}'`)
      screen.unmount()
      await decide(await review('bob'), {id: request.id, action: 'deny', reason: 'not these values'})
      expect(await out, sql).toMatchObject({message: expect.stringMatching(/denied by bob@example.com: not these values/)})
    }
    const state = await withClient(db.url, async (x) => (await x.query("select (select last_value from accounts_seq)::int as seq, (select string_agg(owner, ',' order by id) from accounts) as owners")).rows[0])
    expect(state).toEqual({seq: 1000, owners: 'ann,ben'})

    // A statement the server cannot prepare (a misspelt column) fails at once: nobody is asked.
    const filedBefore = (await listRequests(bucket)).length
    expect(await c.query('update accounts set ownr = $1 where id = $2', ['x', 1]).catch((e: Error & {code?: string}) => e)).toMatchObject({code: '42703'})
    expect((await listRequests(bucket)).length).toBe(filedBefore)

    // Approved, it runs with exactly the values the reviewer read.
    const approved = c.query('update accounts set owner = $1 where id = $2', ['carl', 1])
    const first = await pendingOf('update accounts set owner = $1 where id = $2')
    expect(first.params).toEqual(['carl', '1'])
    await decide(await review('bob'), {id: first.id, action: 'approve'})
    await approved
    expect(await owners()).toBe('carl,ben')

    // A named statement is held at each of its Binds: an approval covers one Bind's values.
    const named = {name: 'upd', text: 'update accounts set owner = $1 where id = $2'}
    const dora = c.query({...named, values: ['dora', 2]})
    const forDora = await pendingOf(named.text)
    expect(forDora.params).toEqual(['dora', '2'])
    await decide(await review('bob'), {id: forDora.id, action: 'approve'})
    await dora
    expect(await owners()).toBe('carl,dora')
    const eve = c.query({...named, values: ['eve', 2]}).catch((e: Error) => e)
    const forEve = await pendingOf(named.text)
    expect(forEve.id).not.toBe(forDora.id)
    expect(forEve.params).toEqual(['eve', '2'])
    await decide(await review('bob'), {id: forEve.id, action: 'deny', reason: 'not eve'})
    expect(await eve).toMatchObject({message: expect.stringMatching(/denied by bob@example.com: not eve/)})
    expect(await owners()).toBe('carl,dora')

    // A long value is shown cut, with its length, so that one value cannot make every reviewer's
    // list as large as itself; approved, the statement runs with all of it.
    const long = `${'l'.repeat(3000)}-end`
    const longRun = c.query('update accounts set owner = $1 where id = $2', [long, 2])
    const forLong = await pendingOf('update accounts set owner = $1 where id = $2')
    expect(forLong.params).toEqual([`${'l'.repeat(2048)}…[cut, ${long.length} bytes in all]`, '2'])
    expect(requestRow({request: forLong, state: 'pending'} as RequestView, new Date()).sql).toContain(`…[cut, ${long.length} bytes in all]'`)
    await decide(await review('bob'), {id: forLong.id, action: 'approve'})
    await longRun
    expect(await owners()).toBe(`carl,${long}`)
    await withClient(db.url, (x) => x.query("update accounts set owner = 'dora' where id = 2"))

    // A protocol Bind of an SQL-prepared statement runs it with the Bind's values: judged as
    // `EXECUTE p($1, $2)`, and held with them. The PREPARE itself is held, and approved.
    const raw = await t.raw()
    raw.send(serialize.query('prepare own as update accounts set owner = $1 where id > $2'))
    await decide(await review('bob'), {id: (await pendingOf('prepare own as update accounts set owner = $1 where id > $2')).id, action: 'approve'})
    expect(codes(await raw.untilReady())).toMatch(/CZ$/)
    raw.send(serialize.bind({statement: 'own', values: ['mallory', '0']}), serialize.execute({}), serialize.sync())
    const own = await pendingOf('EXECUTE "own"($1, $2)')
    expect(own.params).toEqual(['mallory', '0'])
    await decide(await review('bob'), {id: own.id, action: 'deny', reason: 'no'})
    expect(errorOf(await raw.untilReady())).toMatchObject({message: expect.stringMatching(/denied by bob@example.com: no/)})
    expect(await owners()).toBe('carl,dora')

    // A `$1` in a string is no parameter: the statement is held at its Parse, as any other.
    const w = watchNotices(c)
    const held = c.query({text: "update accounts set owner = '$1' where id = 2", queryMode: 'extended'} as pg.QueryConfig).catch((e: Error) => e)
    const plain = await pendingOf("update accounts set owner = '$1' where id = 2")
    expect(plain.params).toBeUndefined()
    await decide(await review('bob'), {id: await w.approvalId(), action: 'deny', reason: 'not today'})
    expect(await held).toMatchObject({message: /denied by bob@example.com: not today/})
    // The session is usable afterwards: the Bind after the refused Parse was not judged as the earlier statement.
    expect((await c.query('select 1 as one')).rows).toEqual([{one: 1}])
    expect((await listRequests(bucket)).filter((v) => v.state === 'pending')).toEqual([])
  })

  it('runs an approved Parse only as the session stood when it was approved: nothing the session runs between the decision and its Bind or Execute changes what it reads or writes', async () => {
    // An unnamed statement stays prepared while named ones run: a SET between the approved Parse
    // and its Bind moves the tables the server resolves at Bind (search_path), and one between its
    // Bind and Execute the values it reads when it runs (current_setting): chosen after the decision.
    const own = `"${db.user}"`
    await withClient(db.url, (x) => x.query(`create table public.ledger (id int, owner text); insert into public.ledger values (1, 'ann'); create schema ${own}; create table ${own}.ledger (id int, owner text); insert into ${own}.ledger values (1, 'ann')`))
    const owners = () => withClient(db.url, async (x) => (await x.query(`select (select owner from public.ledger) as public, (select owner from ${own}.ledger) as own`)).rows[0])
    try {
      const t = await tunnelAs('alice', `${TARGET}\nrules:\n  - id: ledger-updates-need-review\n    match: {command: update}\n    action: require_approval`)
      const settled = new Set<string>()
      const approveHeld = async (sql: string) => {
        let id: string | undefined
        await waitFor(async () => (id = (await listRequests(bucket)).find((v) => v.request.sql === sql && !v.outcome && !settled.has(v.request.id))?.request.id) !== undefined, `${sql} is held`)
        settled.add(id!)
        await decide(await review('bob'), {id: id!, action: 'approve'})
      }
      const byName = (between: string[], tag: string) => between.flatMap((sql, i) => [serialize.parse({name: `${tag}_${i}`, text: sql}), serialize.bind({portal: `${tag}_${i}`, statement: `${tag}_${i}`}), serialize.execute({portal: `${tag}_${i}`})])
      const fromSetting = "update ledger set owner = current_setting('application_name') where id = 1"
      // [set before the request, the approved text, what runs between, whether the approved Bind comes before it]
      const CASES: [string, string, string[], boolean][] = [
        ["set application_name = 'ann'", fromSetting, ["set application_name = 'mallory'"], false],
        ["set application_name = 'ann'", fromSetting, ["set application_name = 'mallory'"], true],
        ["set application_name = 'ann'", fromSetting, ["select set_config('application_name', 'mallory', false)"], true],
        ["set application_name = 'ann'", fromSetting, ['select 1', "set application_name = 'mallory'", 'select 2'], false],
        ['set search_path = "$user", public', "update ledger set owner = 'mallory' where id = 1", ['set search_path = public'], false],
        ['set search_path = public', "update ledger set owner = 'mallory' where id = 1", ['reset search_path'], false],
        ['set search_path = public', "update ledger set owner = 'mallory' where id = 1", ['set search_path to default'], false],
      ]
      for (const [i, [before, sql, between, bindFirst]] of CASES.entries()) {
        const raw = await t.raw()
        raw.send(serialize.query(before))
        expect(codes(await raw.untilReady())).toMatch(/CS?Z$/)
        // All before one Sync: a Sync between the approved Parse and its Bind is refused on its own
        // (approved-parse-ready.test.ts), before what these cases check could be reached.
        const run = bindFirst ? [serialize.bind({}), ...byName(between, `s${i}`)] : [...byName(between, `s${i}`), serialize.bind({})]
        raw.send(serialize.parse({text: sql}), ...run, serialize.execute({}), serialize.sync())
        await approveHeld(sql)
        const replies = await raw.untilReady()
        expect(errorOf(replies), `${sql} after ${between.join('; ')}`).toMatchObject({code: '42501', message: expect.stringMatching(/the session ran other statements between its approval and its Bind or Execute/)})
        expect(await owners(), `${sql} after ${between.join('; ')}`).toEqual({public: 'ann', own: 'ann'})
        raw.end()
      }

      // A Bind of an SQL-prepared statement is held (as EXECUTE p) and approved where it is bound:
      // what runs between it and its Execute does not reach the approved execution either.
      const raw = await t.raw()
      raw.send(serialize.query("set application_name = 'ann'"), serialize.query(`prepare bump as ${fromSetting}`))
      await raw.untilReady()
      await approveHeld(`prepare bump as ${fromSetting}`)
      expect(codes(await raw.untilReady())).toMatch(/CZ$/)
      raw.send(serialize.bind({statement: 'bump'}), ...byName(["set application_name = 'mallory'"], 'p'), serialize.execute({}), serialize.sync())
      await approveHeld('EXECUTE "bump"')
      expect(errorOf(await raw.untilReady())).toMatchObject({code: '42501', message: expect.stringMatching(/ran other statements between its approval/)})
      expect(await owners()).toEqual({public: 'ann', own: 'ann'})

      // What a driver sends (Parse, Bind, Describe, Execute, Sync at once) still runs once approved.
      const c = await t.client()
      const held = c.query({text: "update public.ledger set owner = 'bob' where id = 1", queryMode: 'extended'} as pg.QueryConfig)
      await approveHeld("update public.ledger set owner = 'bob' where id = 1")
      expect((await held).rowCount).toBe(1)
      expect(await owners()).toEqual({public: 'bob', own: 'ann'})
    } finally {
      await withClient(db.url, (x) => x.query(`drop schema ${own} cascade`))
    }
  })

  it('never lets a cursor run an approved query later: a DECLARE is not held, and SQL FETCH or MOVE in an approved portal is refused', async () => {
    // A cursor's query runs at each FETCH, after whatever the session set since the decision
    // (here the value current_setting() reads), and an approved protocol portal is a cursor too.
    await withClient(db.url, (x) => x.query("create table tally (id int, owner text); insert into tally values (1, 'ann'); create function tally_owner(o text) returns int language sql as $f$ update public.tally set owner = o where id = 1 returning 1 $f$"))
    const owner = async () => (await withClient(db.url, (x) => x.query('select owner from public.tally'))).rows[0].owner as string
    const t = await tunnelAs('alice')
    const filed = async () => (await listRequests(bucket)).length
    const before = await filed()
    const c = await t.client()
    await c.query("set application_name = 'ann'")
    await c.query('begin')
    const call = "select tally_owner(current_setting('application_name') || i) from generate_series(1, 3) i"
    for (const sql of [`declare c cursor for ${call}`, `DECLARE "C" NO SCROLL CURSOR WITHOUT HOLD FOR ${call}`, `declare c scroll cursor with hold for ${call}`, `declare c binary insensitive cursor for ${call}`, `select 1; declare c cursor for ${call}`]) {
      const err = await c.query(sql).catch((e: Error & {code?: string}) => e)
      expect(err, sql).toMatchObject({code: '42501', message: expect.stringMatching(/cannot be approved as a cursor \(DECLARE\): its query runs at each FETCH/)})
      await c.query('rollback')
      await c.query('begin')
    }
    await c.query('rollback')
    expect(await filed()).toBe(before)

    const FETCHES = ['fetch all from pp', 'fetch next pp', 'FETCH 1 FROM "pp"', 'move forward all in pp', 'fetch forward 2 in pp', "set application_name = 'mallory'; fetch all from pp"]
    for (const fetch of FETCHES) {
      const raw = await t.raw()
      raw.send(serialize.query("set application_name = 'ann'; begin"))
      await raw.untilReady()
      raw.send(serialize.parse({text: call}), serialize.bind({portal: 'pp'}), serialize.execute({portal: 'pp', rows: 1}), serialize.sync())
      let id: string | undefined
      await waitFor(async () => (id = (await listRequests(bucket)).find((v) => v.request.sql === call && !v.outcome)?.request.id) !== undefined, 'the call is held')
      await decide(await review('bob'), {id: id!, action: 'approve'})
      expect(errorOf(await raw.untilReady())).toBeUndefined()
      raw.send(serialize.query("set application_name = 'mallory'"))
      await raw.untilReady()
      raw.send(serialize.query(fetch))
      // A protocol portal runs only by Execute, an approved one included (its statement would run after other statements of the session).
      expect(errorOf(await raw.untilReady()), fetch).toMatchObject({code: '0A000', message: expect.stringMatching(/FETCH and MOVE in portal "pp" are not allowed through the tunnel/)})
      raw.send(serialize.query('commit'))
      await raw.untilReady()
      expect(await owner(), fetch).toBe('ann')
      raw.end()
    }
  })

  it('never holds COPY … FROM STDIN for a reviewer: its rows come from the client after the decision', async () => {
    await withClient(db.url, (x) => x.query('create table copied (id int, owner text)'))
    const t = await tunnelAs('alice', `${TARGET}\nrules:\n  - id: copies-need-review\n    match: {command: copy}\n    action: require_approval`)
    const c = await t.client()
    const filed = async () => (await listRequests(bucket)).length
    const before = await filed()
    for (const sql of ['copy copied from stdin', 'COPY public.copied (id, owner) FROM STDIN WITH (FORMAT csv)', 'select 1; copy copied from stdin', "copy copied from stdin with (format text, delimiter ',')"]) {
      const err = await c.query(sql).catch((e: Error & {code?: string}) => e)
      expect(err, sql).toMatchObject({code: '42501', message: expect.stringMatching(/cannot be approved as COPY … FROM STDIN: its rows come from the client after the reviewer has decided/)})
    }
    const raw = await t.raw()
    raw.send(serialize.parse({text: 'copy copied from stdin'}), serialize.bind({}), serialize.execute({}), serialize.copyData(Buffer.from('1\tmallory\n')), serialize.copyDone(), serialize.sync())
    expect(errorOf(await raw.untilReady())).toMatchObject({code: '42501', message: expect.stringMatching(/cannot be approved as COPY … FROM STDIN/)})
    expect(await filed()).toBe(before)
    expect((await withClient(db.url, (x) => x.query('select count(*)::int as n from copied'))).rows[0].n).toBe(0)
    // COPY TO STDOUT sends nothing after the decision: it is held as any other.
    const w = watchNotices(c)
    const out = c.query('copy copied to stdout').catch((e: Error) => e)
    await decide(await review('bob'), {id: await w.approvalId(), action: 'deny', reason: 'no exports'})
    expect(await out).toMatchObject({message: /denied by bob@example.com: no exports/})
  })

  it('holds a Parse that declares parameter types its text does not use at its Bind, with the values its domain check runs with', async () => {
    const oid = await withClient(db.url, async (x) => {
      await x.query("create table noted (o text); create table owned (id int, owner text); insert into owned values (1, 'ann'); create function note_value(o text) returns boolean language plpgsql as $f$ begin insert into public.noted values (o); return true; end $f$; create domain noted_text as text check (note_value(value))")
      return Number((await x.query("select 'noted_text'::regtype::oid as oid")).rows[0].oid)
    })
    const t = await tunnelAs('alice', `${TARGET}\nrules:\n  - id: owned-updates-need-review\n    match: {command: update}\n    action: require_approval`)
    const raw = await t.raw()
    const text = "update public.owned set owner = 'bob' where id = 1"
    const seen = new Set<string>()
    for (const types of [[oid], [oid, oid], [25, oid], [23]]) {
      raw.send(serialize.parse({text, types}), serialize.bind({values: types.map(() => '7')}), serialize.execute({}), serialize.sync())
      let request: ApprovalRequest | undefined
      await waitFor(async () => (request = (await listRequests(bucket)).find((v) => v.request.sql === text && !seen.has(v.request.id))?.request) !== undefined, 'the request is filed at the Bind')
      seen.add(request!.id)
      expect(request!.params, JSON.stringify(types)).toEqual(types.map(() => '7'))
      await decide(await review('bob'), {id: request!.id, action: 'deny', reason: 'no'})
      expect(errorOf(await raw.untilReady()), JSON.stringify(types)).toMatchObject({message: expect.stringMatching(/denied by bob@example.com: no/)})
    }
    // A parameter of no declared type that the text does not use: the server refuses the Parse, and
    // its Bind is not held for a reviewer (the server would skip it whatever they said).
    const filed = (await listRequests(bucket)).length
    raw.send(serialize.parse({text, types: [0]}), serialize.bind({values: ['7']}), serialize.execute({}), serialize.sync())
    expect(errorOf(await raw.untilReady())).toMatchObject({code: '42P18'})
    expect((await listRequests(bucket)).length).toBe(filed)
    const state = await withClient(db.url, async (x) => (await x.query('select (select count(*) from public.noted)::int as noted, (select owner from public.owned) as owner')).rows[0])
    expect(state).toEqual({noted: 0, owner: 'ann'})
  })

  it('expires a request nobody decides', async () => {
    const t = await tunnelAs('alice', TARGET.replace('expiry: 15m', 'expiry: 1s'))
    const c = await t.client()
    const w = watchNotices(c)
    const err = await c.query('create table expired (id int)').catch((e: Error & {code?: string}) => e)
    expect(err).toMatchObject({code: '42501', message: expect.stringMatching(/^dbgate: approval apr-[a-z0-9]+ expired after 1s with no decision by a member of dba$/)})
    const id = await w.approvalId()
    expect((await readOutcome(bucket, id))?.state).toBe('expired')
    expect(await tableCount('expired')).toBe(0)
  })

  it('records requests, decisions, refusals and outcomes in the session logs', async () => {
    await Promise.all(tunnels.splice(0).map((t) => t.close()))
    const reader = new SessionReader(bucket, mkdtempSync(path.join(tmpdir(), 'dbgate-cache-')))
    const events: AuditEvent[] = []
    for (const s of await reader.list()) events.push(...(await reader.loadSummary(s)).events)
    const types = new Set(events.map((e) => e.type))
    for (const t of ['approval.requested', 'approval.decided', 'approval.rejected_decision', 'approval.withdrawn', 'approval.expired']) expect(types, t).toContain(t)
    const statements = events.filter((e) => e.type === 'statement').map((e) => e.data as StatementData)
    const approved = statements.find((s) => s.sql === 'create table approved_once (id int)')!
    expect(approved).toMatchObject({decision: 'approved', outcome: 'ok', class: 'ddl'})
    expect(approved.approvalId).toMatch(/^apr-/)
    expect(statements.find((s) => s.sql === 'alter table approved_once add column note text')).toMatchObject({decision: 'approval_denied', outcome: 'rejected'})
    expect(statements.find((s) => s.sql === 'create table expired (id int)')).toMatchObject({decision: 'approval_timeout'})
    const decidedEv = events.find((e) => e.type === 'approval.decided' && (e.data as {approvalId: string}).approvalId === approved.approvalId)!
    expect(decidedEv.data).toMatchObject({decision: 'approved', reviewer: {email: 'bob@example.com', groups: ['dba']}, reason: 'schema change ticket 42'})
    const refused = events.filter((e) => e.type === 'approval.rejected_decision').map((e) => (e.data as {problem: string}).problem)
    expect(refused).toEqual(expect.arrayContaining([expect.stringMatching(/not sealed to this tunnel/), expect.stringMatching(/cannot decide their own request/)]))
    // `sessions show` / `replay` print them as sentences, not raw JSON.
    const shown = stripVTControlCharacters(renderTimeline(events).join('\n'))
    expect(shown).toMatch(new RegExp(`APPROVAL REQUESTED ${approved.approvalId} · ddl · rule default.ddl-approval`))
    expect(shown).toMatch(new RegExp(`APPROVAL GRANTED ${approved.approvalId} by bob@example.com \\(dba\\): schema change ticket 42`))
    expect(shown).toMatch(/DECISION REFUSED apr-[a-z0-9]+ claiming to be from bob@example.com: its proof was not sealed to this tunnel/)
    expect(shown).toMatch(/APPROVAL WITHDRAWN apr-/)
    expect(shown).toMatch(/APPROVAL EXPIRED apr-/)
    expect(shown).toMatch(new RegExp(`APPROVED ddl · rule default.ddl-approval · approval ${approved.approvalId}`))
    // Tokens never reach a recording: only their hashes.
    expect(JSON.stringify(events)).not.toMatch(/eyJ[\w-]+\.eyJ/)
  })

  it('gives dbgate report the approvals as the tunnels recorded them, every log verified', async () => {
    const {report} = await produceReport({
      bucket,
      cacheDir: mkdtempSync(path.join(tmpdir(), 'dbgate-cache-')),
      since: new Date(Date.now() - 3_600_000),
      until: new Date(),
      frameworks: ['soc2'],
      outDir: mkdtempSync(path.join(tmpdir(), 'dbgate-report-')),
      generator: 'test',
    })
    const granted = report.approvals.find((a) => a.outcome === 'approved' && a.decisionReason === 'schema change ticket 42')!
    expect(granted).toMatchObject({requester: 'alice@example.com', reviewer: 'bob@example.com', sql: 'create table approved_once (id int)', statementOutcome: 'ok', class: 'ddl', ruleId: 'default.ddl-approval'})
    expect(new Set(report.approvals.map((a) => a.outcome))).toEqual(new Set(['approved', 'denied', 'expired', 'withdrawn', 'window']))
    expect(report.summary.forgedDecisionsRefused).toBeGreaterThanOrEqual(2)
    expect(report.integrity.filter((i) => i.result === 'failed')).toEqual([])
    expect(report.identities.map((i) => i.identity)).toContain('alice@example.com')
  })
})

describe('approvals that cannot work', () => {
  it('fail at once, saying why, without an identity section or without reviewers', async () => {
    const db = await createTestDatabase()
    const anonymous = await openPipelineTunnel(db, 'reviewers: [dba]')
    try {
      const c = await anonymous.client()
      await expect(c.query('create table t (id int)')).rejects.toMatchObject({code: '42501', message: /requires approval.*; approvals need signed-in users$/, hint: /identity:/})
    } finally {
      await anonymous.close()
    }
    const p = await people()
    try {
      await p.login('alice')
      const unreviewed = await openPipelineTunnel(db, '', {identity: {issuer: p.f.dev.issuer, clientId: p.f.dev.cliClientId, env: p.env('alice')}})
      try {
        const c = await unreviewed.client()
        await expect(c.query('create table t (id int)')).rejects.toMatchObject({message: 'dbgate: statement requires approval (rule default.ddl-approval) but target app names no reviewers'})
      } finally {
        await unreviewed.close()
      }
    } finally {
      await p.close()
    }
  })
})
