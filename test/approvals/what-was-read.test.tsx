/**
 * A decision is for the request the reviewer read, not for whatever sits under its id or its place
 * in the list by the time they press Enter.
 *
 * The attacks, through a real tunnel, a real IdP, real PostgreSQL and the real interactive view
 * (`dbgate approve`, rendered with ink-testing-library over the same source the CLI builds):
 * - alice has a harmless statement and a harmful one waiting; bob picks the harmless one, presses
 *   `a` (or `w`) and types a reason; alice withdraws it (Ctrl-C); the list refreshes, the selection
 *   falls to the harmful one, and Enter approved that.
 * - someone who writes the bucket shows bob a harmless copy of a harmful request (same id), and puts
 *   the genuine one back while he decides: the decision was made on the genuine one, which the
 *   tunnel accepts, since it matches what the tunnel filed.
 */
import http from 'node:http'
import net from 'node:net'
import type {AddressInfo} from 'node:net'
import {stripVTControlCharacters} from 'node:util'
import {render} from 'ink-testing-library'
import type pg from 'pg'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {decide} from '../../src/approvals/review.js'
import {decisionKey, readRequest, requestDigest, requestKey} from '../../src/approvals/store.js'
import type {Bucket} from '../../src/bucket/index.js'
import type {DbgateConfig} from '../../src/config/types.js'
import {buildTunnelHooks} from '../../src/pipeline/index.js'
import {ApprovalsApp, Detail} from '../../src/tui/approvals/App.js'
import {reviewSource} from '../../src/tui/approvals/run.js'
import {encodeCancelRequest} from '../../src/wire/frontend.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient, type UpstreamInfo} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {approvalSetting, watchNotices, type ApprovalSetting, type People} from './helpers.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m', '  windows: true'].join('\n')

describe('a decision covers the request the reviewer read', () => {
  let p: People
  let db: UpstreamInfo
  let bucketUrl: string
  let bucket: Bucket
  let config: DbgateConfig
  let t: PipelineTunnel
  let ui: ReturnType<typeof render> | undefined

  const review = async (user: string) => ({bucket, config, reviewer: await p.reviewer(user)})
  const tableExists = (name: string) => withClient(db.url, async (c) => (await c.query('select count(*)::int as n from pg_class where relname = $1', [name])).rows[0].n === 1)
  const frame = () => stripVTControlCharacters(ui?.lastFrame() ?? '')
  const until = (ok: (f: string) => boolean, what: string) => waitFor(() => ok(frame()), () => `${what}; last frame:\n${frame()}`, {timeoutMs: 15_000, intervalMs: 20})
  const press = async (keys: string, ok: (f: string) => boolean, what: string) => {
    ui!.stdin.write(keys)
    await until(ok, what)
  }
  const cancel = async (c: pg.Client) => {
    const s = net.connect({host: '127.0.0.1', port: t.info.port})
    await new Promise((r) => s.once('connect', r))
    const {processID, secretKey} = c as unknown as {processID: number; secretKey: number}
    s.end(encodeCancelRequest(processID, secretKey))
  }
  /** Holds `sql` on a new client of alice's; resolves with the approval id and what the statement ends with. */
  const hold = async (sql: string) => {
    const c = await t.client()
    const w = watchNotices(c)
    const ended = c.query(sql).then(
      () => 'ran',
      (e: Error & {code?: string}) => e.code ?? e.message,
    )
    return {c, id: await w.approvalId(), ended}
  }

  let setting: ApprovalSetting | undefined

  beforeAll(async () => {
    setting = await approvalSetting({database: 'what_was_read', target: TARGET, requester: 'alice', others: ['bob']})
    ;({p, db, bucketUrl, bucket, config, t} = setting)
  })
  afterEach(() => {
    ui?.unmount()
    ui = undefined
  })
  afterAll(() => setting?.close())

  it('refuses a decision on a request that changed in the bucket since the reviewer read it, in the interactive view and in the core', async () => {
    await withClient(db.url, (c) => c.query('create table precious_swap (id int)'))
    const harmful = await hold('alter table precious_swap rename to gone_swap')
    const genuine = await readFile(requestKey(harmful.id))
    const request = (await readRequest(bucket, harmful.id))!
    // A bucket writer shows the reviewer a harmless copy under the same id...
    const shown = {...request, sql: 'create index concurrently orders_status on orders (status)', statements: request.statements.map((s) => ({...s, text: 'create index concurrently orders_status on orders (status)'}))}
    await bucket.put(requestKey(harmful.id), JSON.stringify(shown))

    ui = render(<ApprovalsApp source={reviewSource(await review('bob'))} reviewer="bob@example.com" refreshMs={600_000} />)
    await until((f) => f.includes(`› ${harmful.id}`) && f.includes('create index concurrently orders_status'), 'the harmless copy is shown')
    await press('a', (f) => f.includes('Reason (optional):'), 'the prompt is up')
    // ...and puts the genuine one back before the reviewer confirms.
    await bucket.put(requestKey(harmful.id), genuine)
    await press('\r', (f) => f.includes('✗') && f.includes('changed'), 'the decision is refused')
    expect(frame().replace(/\s+/g, ' ')).toContain(`${harmful.id} is not the request you read`)
    await new Promise((r) => setTimeout(r, 500))
    expect(await bucket.head(decisionKey(harmful.id))).toBeFalsy()
    expect(await tableExists('precious_swap')).toBe(true)

    // The core refuses it the same way for every action, before anything is sealed.
    for (const action of ['approve', 'window'] as const) {
      await expect(decide(await review('bob'), {id: harmful.id, action, digest: requestDigest(shown), ...(action === 'window' ? {windowMs: 60_000} : {})})).rejects.toMatchObject({code: 'APPROVAL_UNTRUSTED_REQUEST'})
    }
    expect(await bucket.head(decisionKey(harmful.id))).toBeFalsy()
    // What the reviewer read, unchanged, is decided as before.
    await decide(await review('bob'), {id: harmful.id, action: 'deny', reason: 'no', digest: requestDigest(request)})
    expect(await harmful.ended).toBe('42501')
    expect(await tableExists('precious_swap')).toBe(true)
  })


  for (const [key, prompt, what] of [
    ['a', 'Reason (optional):', 'approve'],
    ['w', 'Window length', 'window'],
  ] as const) {
    it(`never moves a decision (${what}) to another request when the one the reviewer chose is withdrawn while they type`, async () => {
      const precious = `precious_${what}`
      await withClient(db.url, (c) => c.query(`create table ${precious} (id int)`))
      const harmless = await hold(`create table harmless_${what} (id int)`)
      const harmful = await hold(`alter table ${precious} rename to gone_${what}`)

      ui = render(<ApprovalsApp source={reviewSource(await review('bob'))} reviewer="bob@example.com" refreshMs={150} />)
      await until((f) => f.includes(harmless.id) && f.includes(harmful.id), 'both requests are listed')
      // Newest first: bob moves down to the harmless one, reads it, and starts deciding it.
      await press('j', (f) => f.includes(`› ${harmless.id}`) && f.includes(`create table harmless_${what}`), 'the harmless request is selected')
      await press(key, (f) => f.includes(prompt), 'the prompt is up')
      if (key === 'a') await press('looks fine', (f) => f.includes('looks fine'), 'the reason is typed')

      await cancel(harmless.c)
      expect(await harmless.ended).toBe('57014')
      await until((f) => !f.includes(`› ${harmless.id}`) && !f.includes(`  ${harmless.id}`), 'the withdrawn request leaves the list')
      const f = frame().replace(/\s+/g, ' ')
      ui.stdin.write('\r')
      // Whatever Enter does now, it does not decide the harmful request.
      await new Promise((r) => setTimeout(r, 1500))
      expect(await bucket.head(decisionKey(harmful.id))).toBeFalsy()
      expect(await tableExists(precious)).toBe(true)
      expect(f).toContain(`${harmless.id} is no longer pending`)
      expect(f).toContain('nothing was decided')
      await cancel(harmful.c)
      expect(await harmful.ended).toBe('57014')
      expect(await tableExists(precious)).toBe(true)
    })
  }

  it('shows the reviewer the session settings that change what the text means, however they were set and however long ago', async () => {
    // Set by SET, by set_config in a simple query, and by set_config with a bound value, each then
    // pushed out of "Earlier in this session" by five statements.
    const c = await t.client()
    await c.query({text: "select set_config('IntervalStyle', $1, false)", values: ['sql_standard']})
    await c.query("set datestyle = 'SQL, DMY'")
    await c.query("select set_config('TimeZone', 'Pacific/Kiritimati', false)")
    for (let i = 0; i < 5; i++) await c.query('select 1')
    const w = watchNotices(c)
    const held = c.query("create table cutoff (day date default '01/02/2026', at timestamptz default '2026-02-01 00:00')").then(
      () => 'ran',
      (e: Error & {code?: string}) => e.code,
    )
    const id = await w.approvalId()
    const request = (await readRequest(bucket, id))!
    expect(request.recent.map((r) => r.sql)).toEqual(Array(5).fill('select 1'))
    expect(request.settings).toMatchObject({DateStyle: 'SQL, DMY', TimeZone: 'Pacific/Kiritimati', IntervalStyle: 'sql_standard'})
    ui = render(<Detail view={{request, state: 'pending'}} now={new Date()} />)
    const f = frame().replace(/[\s│]+/g, ' ')
    expect(f).toContain('DateStyle = SQL, DMY')
    expect(f).toContain('TimeZone = Pacific/Kiritimati')
    expect(f).toContain('IntervalStyle = sql_standard')
    await decide(await review('bob'), {id, action: 'deny', reason: 'which 01/02?'})
    expect(await held).toBe('42501')
  })

  it('never shows a statement that runs as part of a "--" comment on one line: in the webhook, on the tunnel\'s terminal, or among what ran before', async () => {
    const posts: string[] = []
    const hook = http.createServer((req, res) => {
      let body = ''
      req.on('data', (d: Buffer) => (body += d.toString()))
      req.on('end', () => {
        posts.push((JSON.parse(body) as {text: string}).text)
        res.end('ok')
      })
    })
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r))
    const announced: string[] = []
    const hooked = await openPipelineTunnel(db, `${TARGET}\n  webhook: http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`, {
      top: `bucket: ${bucketUrl}`,
      identity: {issuer: p.f.dev.issuer, clientId: p.f.dev.cliClientId, env: p.env('alice')},
      hooks: (ctx) => buildTunnelHooks({...ctx, approvalPollMs: 100, announce: (m: string) => announced.push(m)}),
    })
    try {
      const c = await hooked.client()
      await c.query('select 1 -- an earlier check\n, 2 as second')
      for (const [i, breakAfter] of ['\n', '\r\n', '\r', '\n   \n'].entries()) {
        const sql = `select 1 as n -- just a count${breakAfter};alter table precious_hook_${i} rename to gone_hook_${i}`
        const w = watchNotices(c)
        const held = c.query(sql).catch((e: Error & {code?: string}) => e.code)
        const id = await w.approvalId()
        await waitFor(() => posts.some((x) => x.includes(id)), 'the webhook is told')
        const post = posts.find((x) => x.includes(id))!
        const said = announced.find((x) => x.includes(id))!
        for (const line of [post, said]) {
          expect(line, JSON.stringify(breakAfter)).not.toMatch(/-- just a count ;alter table/)
          expect(line, JSON.stringify(breakAfter)).toMatch(/-- just a count\\x0a ;alter table precious_hook_/)
        }
        const request = (await readRequest(bucket, id))!
        ui = render(<Detail view={{request, state: 'pending'}} now={new Date()} />)
        const f = frame().replace(/[\s│]+/g, ' ')
        expect(f).toContain('✓ select 1 -- an earlier check\\x0a , 2 as second')
        ui.unmount()
        ui = undefined
        await decide(await review('bob'), {id, action: 'deny', reason: 'no'})
        expect(await held).toBe('42501')
      }
    } finally {
      await hooked.close().catch(() => {})
      hook.close()
    }
  })

  const readFile = async (key: string) => (await bucket.get(key)).body
})
