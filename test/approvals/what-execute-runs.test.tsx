/**
 * `EXECUTE p` carries no SQL of its own: policy judges it as what the session prepared under p,
 * and holds it for a reviewer when that needs one. The reviewer was shown `execute p` alone, with
 * the last five statements of the session: a PREPARE further back (approved once, by anyone, for
 * another purpose) was nowhere on their screen, so they approved a statement without being able
 * to read what it runs. The request now carries the text of each prepared statement the held text
 * executes, and the interactive view (where it is part of what must be read before approving) and
 * `dbgate approvals show` print it. Real tunnel, real IdP, real PostgreSQL, node-postgres, the
 * interactive view rendered with ink-testing-library.
 */
import {stripVTControlCharacters} from 'node:util'
import {render} from 'ink-testing-library'
import type pg from 'pg'
import {createElement} from 'react'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {formatRequestDetail} from '../../src/approvals/cli.js'
import {decide} from '../../src/approvals/review.js'
import {readRequest} from '../../src/approvals/store.js'
import {Detail} from '../../src/tui/approvals/App.js'
import {withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {approvalSetting, watchNotices, type ApprovalSetting} from './helpers.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m'].join('\n')

describe('a held EXECUTE of a statement prepared long before', () => {
  let s: ApprovalSetting
  beforeAll(async () => {
    s = await approvalSetting({database: 'what_execute_runs', target: TARGET, requester: 'alice', others: ['bob']})
    await withClient(s.db.url, (c) =>
      c.query(`create table accounts (id int, owner text); insert into accounts values (1, 'a');
        create function wipe_accounts() returns int language plpgsql volatile as $$ begin delete from accounts where id > 0; return 1; end $$;`),
    )
  })
  afterAll(() => s?.close())

  const bob = async () => ({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')})
  /** Runs `sql` held on `c`, once bob has approved it. */
  const approved = async (c: pg.Client, w: ReturnType<typeof watchNotices>, sql: string) => {
    const before = w.notices.length
    const held = c.query(sql)
    const id = await heldId(w, before)
    await decide(await bob(), {id, action: 'approve'})
    await held
  }
  const heldId = async (w: ReturnType<typeof watchNotices>, before: number) => {
    const find = () => w.notices.slice(before).map((n) => /waiting for approval (apr-[a-z0-9]+)/.exec(n)?.[1]).find(Boolean)
    await waitFor(() => find() !== undefined, 'the statement is held')
    return find()!
  }

  const routes: [string, string, (c: pg.Client, sql: string) => Promise<unknown>][] = [
    ['a simple query', 'prepare p1 as select wipe_accounts() as n', (c, sql) => c.query(sql)],
    ['an unnamed Parse', 'select 1; prepare p2 as select wipe_accounts() as n', (c, sql) => c.query({text: sql, queryMode: 'extended'} as pg.QueryConfig)],
  ]
  for (const [route, prepare, send] of routes) {
    it(`shows the reviewer what the prepared statement runs (EXECUTE in ${route})`, async () => {
      const name = /prepare (p\d)/.exec(prepare)![1]!
      const c = await s.t.client()
      const w = watchNotices(c)
      await approved(c, w, prepare)
      // The PREPARE goes out of "Earlier in this session".
      for (let i = 0; i < 6; i++) await c.query('select 1')
      const before = w.notices.length
      const held = send(c, `execute ${name}`).catch((e: Error) => e)
      const id = await heldId(w, before)
      const request = (await readRequest(s.bucket, id))!
      expect(request.sql).toBe(`execute ${name}`)
      expect(request.recent.map((r) => r.sql).join('\n')).not.toMatch(/wipe_accounts/)
      const view = {request, state: 'pending' as const}
      const ui = render(createElement(Detail, {view, now: new Date()}))
      const frame = stripVTControlCharacters(ui.lastFrame() ?? '')
      ui.unmount()
      expect(frame).toMatch(new RegExp(`where ${name} is the prepared statement:[\\s│]*prepare ${name} as select wipe_accounts\\(\\) as n`))
      expect(formatRequestDetail(view)).toContain(`where ${name} is the prepared statement:\nprepare ${name} as select wipe_accounts() as n`)
      await decide(await bob(), {id, action: 'deny', reason: 'read it'})
      expect(await held).toMatchObject({code: '42501'})
      expect(await withClient(s.db.url, async (x) => (await x.query('select count(*)::int as n from accounts')).rows[0].n)).toBe(1)
      await c.end()
    })
  }

  it('never shows what the session held under a name the held text prepares again itself', async () => {
    const c = await s.t.client()
    const w = watchNotices(c)
    await c.query('prepare p3 as select 1 as n')
    const before = w.notices.length
    const sql = 'deallocate p3; prepare p3 as select wipe_accounts() as n; execute p3'
    const held = c.query(sql).catch((e: Error) => e)
    const id = await heldId(w, before)
    const request = (await readRequest(s.bucket, id))!
    expect(request.sql).toBe(sql)
    expect(formatRequestDetail({request, state: 'pending'})).not.toMatch(/where p3 is the prepared statement/)
    await decide(await bob(), {id, action: 'deny', reason: 'read it'})
    expect(await held).toMatchObject({code: '42501'})
    await c.end()
  })
})
