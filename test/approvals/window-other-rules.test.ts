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
import {seal} from '../../src/approvals/seal.js'
import {decisionKey, readRequest, requestDigest} from '../../src/approvals/store.js'
import type {ApprovalDecision, ApprovalRequest} from '../../src/approvals/types.js'
import {getIdentity} from '../../src/identity/session.js'
import {openTokenStore} from '../../src/identity/token-store.js'
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

  /** A window sealed properly with bob's fresh token, written past every check the CLI makes. */
  async function windowBy(user: string, request: ApprovalRequest, windowMs: number): Promise<ApprovalDecision> {
    const env = s.p.env(user)
    const session = await (await getIdentity(s.p.f.config, {env, store: openTokenStore({env})})).refresh()
    const digest = requestDigest(request)
    const decidedAt = new Date().toISOString()
    const {subject, email, groups} = session.identity
    const sealed = {requestId: request.id, requestDigest: digest, action: 'window' as const, windowMs, decidedAt, token: session.token}
    return {v: 1, requestId: request.id, action: 'window', reviewer: {subject, email, groups}, windowMs, decidedAt, requestDigest: digest, proof: seal(request.sealKey, JSON.stringify(sealed), {requestId: request.id, requestDigest: digest})}
  }

  it('grants no window on a statement held because dbgate cannot see the code it runs: it would let any such code through', async () => {
    // A harmless volatile call today; under a window, every volatile call, trigger or DO block of
    // the same rule after it (a body that deletes every account) would run unread.
    const c = await s.t.client()
    const w = watchNotices(c)
    const cases = ['select wipe_accounts() where false', 'do $$ begin perform 1; end $$']
    for (const sql of cases) {
      const before = w.notices.length
      const held = c.query(sql).catch((e: Error) => e)
      await waitFor(() => w.notices.slice(before).some((n) => /waiting for approval apr-/.test(n)), 'held')
      const id = /waiting for approval (apr-[a-z0-9]+)/.exec(w.notices.slice(before).find((n) => /waiting for approval/.test(n))!)![1]!
      const bob = {bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}
      await expect(decide(bob, {id, action: 'window', windowMs: 60_000}), sql).rejects.toMatchObject({code: 'APPROVAL_BAD_INPUT', message: expect.stringMatching(/A window cannot be granted on apr-.*cannot see the code they run/)})
      // Written past the CLI, the tunnel refuses it, and the statement keeps waiting.
      await s.bucket.put(decisionKey(id), JSON.stringify(await windowBy('bob', (await readRequest(s.bucket, id))!, 60_000)), {ifNoneMatch: true})
      await waitFor(() => w.notices.slice(before).some((n) => /a window cannot be granted here/.test(n)), 'the window is refused')
      await waitFor(
        () =>
          decide(bob, {id, action: 'approve'}).then(
            () => true,
            () => false,
          ),
        'a one-time approval can be written once the refused window is moved aside',
        {intervalMs: 100},
      )
      expect(await held, sql).not.toBeInstanceOf(Error)
      // No window opened: the next volatile call asks again.
      const next = w.notices.length
      const again = c.query('select wipe_accounts() where false').catch((e: Error) => e)
      await waitFor(() => w.notices.slice(next).some((n) => /waiting for approval apr-|running under the window/.test(n)), 'held or run')
      expect(w.notices.slice(next).join('\n'), sql).toMatch(/waiting for approval/)
      const other = /waiting for approval (apr-[a-z0-9]+)/.exec(w.notices.slice(next).find((n) => /waiting for approval/.test(n))!)![1]!
      await decide(bob, {id: other, action: 'deny', reason: 'no'})
      await again
    }
    expect(await accounts()).toBe(10)
  })
})
