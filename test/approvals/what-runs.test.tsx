/**
 * A write whose table runs code the statement does not show (a trigger whose function builds SQL at
 * run time, a default or a check that calls a volatile function) needs a reviewer, and the client
 * is told which trigger or function. The reviewer was not: the request carried the rule's general
 * reason ("this statement calls a volatile function") beside a plain `insert into audited values
 * (1)`, which calls none, so they approved a write without being shown what would run with it.
 * The request now names every part that needs a reviewer and why, and `dbgate approve` and
 * `dbgate approvals show` show them. Real tunnel, real IdP, real PostgreSQL, node-postgres, the
 * interactive view rendered with ink-testing-library.
 */
import {stripVTControlCharacters} from 'node:util'
import {render} from 'ink-testing-library'
import {createElement} from 'react'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {formatRequestDetail} from '../../src/approvals/cli.js'
import {decide} from '../../src/approvals/review.js'
import {readRequest} from '../../src/approvals/store.js'
import {Detail} from '../../src/tui/approvals/App.js'
import {withClient} from '../helpers/pg.js'
import {approvalSetting, watchNotices, type ApprovalSetting} from './helpers.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m'].join('\n')

describe('a write whose table runs code it does not show', () => {
  let s: ApprovalSetting
  beforeAll(async () => {
    s = await approvalSetting({database: 'what_runs', target: TARGET, requester: 'alice', others: ['bob']})
    await withClient(s.db.url, (c) =>
      c.query(`create table victims (id int);
        create function audit_dyn() returns trigger language plpgsql as $$ begin execute 'delete from victims'; return new; end $$;
        create table audited (id int);
        create trigger audited_trg before insert on audited for each row execute function audit_dyn();
        create function stamp_volatile() returns int language plpgsql volatile as $$ begin execute 'delete from victims'; return 1; end $$;
        create table stamped (id int, s int default stamp_volatile());
        create function check_volatile(int) returns boolean language plpgsql volatile as $$ begin execute 'delete from victims'; return true; end $$;
        create table checked (id int check (check_volatile(id)));`),
    )
  })
  afterAll(() => s?.close())

  const cases: [string, RegExp][] = [
    ['insert into audited values (1)', /audit_dyn/],
    ['insert into stamped (id) values (1)', /stamp_volatile/],
    ['insert into checked values (1)', /check_volatile/],
  ]
  for (const [sql, names] of cases) {
    it(`shows the reviewer what runs with ${sql}`, async () => {
      const c = await s.t.client()
      const w = watchNotices(c)
      const held = c.query(sql).catch((e: Error) => e)
      const id = await w.approvalId()
      const request = (await readRequest(s.bucket, id))!
      // The text itself names no function: only what the request says beside it can tell the reviewer.
      expect(request.sql).not.toMatch(names)
      const view = {request, state: 'pending' as const}
      const ui = render(createElement(Detail, {view, now: new Date()}))
      const frame = stripVTControlCharacters(ui.lastFrame() ?? '')
      ui.unmount()
      expect(frame, sql).toMatch(names)
      expect(formatRequestDetail(view), sql).toMatch(names)
      await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'deny', reason: 'not seen'})
      expect(await held).toMatchObject({code: '42501'})
      await c.end()
    })
  }
})
