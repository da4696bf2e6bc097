/**
 * A window covers what the rule it was granted under holds, for its class. A statement is judged
 * operation by operation, and the strictest operation decides; among equally strict ones (two that
 * each need a reviewer) the statement's primary operation speaks. A window granted on a schema
 * change (rule default.ddl-approval) matched a statement by that one decision alone, so a DDL
 * statement that also calls a function the pack holds under another rule (a volatile function
 * whose body deletes every row) ran under the window: the call nobody reviewed ran with it. Real
 * tunnel, real IdP, real PostgreSQL, node-postgres.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decide} from '../../src/approvals/review.js'
import {withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {approvalSetting, watchNotices, type ApprovalSetting} from './helpers.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m', '  windows: true'].join('\n')

describe('a window, and a statement that holds more than its rule holds', () => {
  let s: ApprovalSetting
  beforeAll(async () => {
    s = await approvalSetting({database: 'window_rules', target: TARGET, requester: 'alice', others: ['bob']})
    await withClient(s.db.url, (c) =>
      c.query(`create table accounts (id int primary key, owner text);
        insert into accounts select g, 'owner ' || g from generate_series(1, 10) g;
        create table notes (id int);
        create function wipe_accounts() returns int language plpgsql volatile as $$ begin delete from accounts where id > 0; return 1; end $$;`),
    )
  })
  afterAll(() => s?.close())

  const accounts = () => withClient(s.db.url, async (c) => Number((await c.query('select count(*) from accounts')).rows[0].count))

  it('still asks for the call another rule holds, in every DDL statement that runs it', async () => {
    const c = await s.t.client()
    const w = watchNotices(c)
    const held = c.query('create index notes_id on notes (id)')
    const id = await w.approvalId()
    await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'window', windowMs: 60_000})
    await held
    // The window covers schema changes: another one runs without asking.
    await c.query('create index notes_id_2 on notes (id)')
    expect(w.notices.at(-1)).toMatch(new RegExp(`running under the window ${id}`))

    const others = [
      'create table wiped_1 as select wipe_accounts() as n',
      'create materialized view wiped_2 as select wipe_accounts() as n',
      'alter table notes add column n int default wipe_accounts()',
      'create table wiped_3 as select id, wipe_accounts() as n from notes union all select 1, wipe_accounts()',
    ]
    for (const sql of others) {
      const before = w.notices.length
      let done = false
      const asked = c.query(sql).then(
        (r) => {
          done = true
          return r
        },
        (e: Error) => {
          done = true
          return e
        },
      )
      await waitFor(() => done || w.notices.slice(before).some((n) => /waiting for approval apr-/.test(n)), 'the statement is held or ends')
      const notice = w.notices.slice(before).find((n) => /waiting for approval|running under the window/.test(n))
      expect(notice, sql).toMatch(/waiting for approval/)
      const other = /waiting for approval (apr-[a-z0-9]+)/.exec(notice!)![1]!
      await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id: other, action: 'deny', reason: 'not under the window'})
      expect(await asked, sql).toMatchObject({code: '42501'})
      expect(await accounts(), sql).toBe(10)
    }
  })
})
