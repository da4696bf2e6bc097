import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type pg from 'pg'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {wipedAccounts, refusedByPolicy, WIPING_CODE} from './wiping-code.js'

/**
 * brin_summarize_range and brin_summarize_new_values build the summaries of a BRIN index's
 * unsummarized ranges, evaluating the index's expressions on every row there. They were judged as
 * maintenance ("changes planner statistics, index summaries or the catalog"), which a rule
 * allowing class admin lets run and a reviewer reads as harmless, so with such a rule `select
 * brin_summarize_new_values('b_idx')` over an index on public.quiet(id) deleted every account.
 */
describe('BRIN summarization and the index code it evaluates', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  let admin: PipelineTunnel
  const {direct, accounts, refill} = wipedAccounts(() => db.url)
  const unsummarize = () => direct((c) => c.query("select brin_desummarize_range('b_idx', 0), brin_desummarize_range('plain_idx', 0)"))
  const refused = (c: pg.Client, sql: string, extended = false) => refusedByPolicy(c, sql, extended, 'b')

  beforeAll(async () => {
    db = await createTestDatabase()
    // The index is built before the accounts exist (its build runs quiet too); each test makes its
    // first range (a whole page, which brin_summarize_new_values takes) unsummarized again.
    await direct((c) =>
      c.query(`
        ${WIPING_CODE}
        create table b_log (id int) with (autovacuum_enabled = false);
        insert into b_log select g from generate_series(1, 1000) g;
        create index b_idx on b_log using brin ((public.quiet(id))) with (pages_per_range = 1);
        create table plain (id int) with (autovacuum_enabled = false);
        insert into plain select g from generate_series(1, 1000) g;
        create index plain_idx on plain using brin (id) with (pages_per_range = 1);
      `),
    )
    t = await openPipelineTunnel(db)
    admin = await openPipelineTunnel(db, ['rules:', '  - id: maintenance', '    match: {class: admin}', '    action: allow'].join('\n'))
  })
  afterAll(async () => {
    await t?.close()
    await admin?.close()
  })

  const attacks = [
    "select brin_summarize_new_values('b_idx')",
    "select brin_summarize_range('public.b_idx', 0)",
    "select pg_catalog.brin_summarize_range('b_idx'::regclass, 0)",
    "select brin_summarize_new_values('\"b_idx\"')",
    // An index dbgate cannot read from the text may be any index.
    "select brin_summarize_new_values(c.oid) from pg_class c where c.relname = 'b_idx'",
    "select brin_summarize_new_values(('b' || '_idx')::regclass)",
  ]

  it('judges a summarized index by its expressions, under the default pack and where a rule allows maintenance', async () => {
    for (const tunnel of [admin, t]) {
      for (const extended of [false, true]) {
        for (const sql of attacks) {
          await unsummarize()
          await refill()
          const c = await tunnel.client()
          const e = await refused(c, sql, extended)
          await c.end()
          // Under the default pack maintenance needs a reviewer anyway (the hold for the code is one more).
          expect(e.message, `${sql}: ${e.detail}`).toMatch(tunnel === admin ? /rule default\.(volatile-function|no-unfiltered-delete|every-table-code)/ : /requires approval by a reviewer/)
          if (tunnel === admin) expect(e.detail, sql).toMatch(/public\.wipe deletes every row of public\.accounts|is given an index dbgate cannot read/)
          expect(await accounts(), sql).toBe(10)
        }
      }
    }
  })

  it('says what runs: the index code, or that the index is not readable from the text', async () => {
    await unsummarize()
    const c = await admin.client()
    expect((await refused(c, "select brin_summarize_new_values('b_idx')", false)).detail).toMatch(/public\.wipe deletes every row of public\.accounts/)
    expect((await refused(c, 'select brin_summarize_new_values(12345)', false)).detail).toMatch(/brin_summarize_new_values\(\) is given an index dbgate cannot read from the statement/)
    await c.end()
  })

  it('still summarizes an index whose code is built in where maintenance is allowed', async () => {
    const c = await admin.client()
    for (const sql of ["select brin_summarize_new_values('plain_idx') n", "select brin_summarize_range('public.plain_idx', 0) n"]) {
      await unsummarize()
      expect((await c.query(sql)).rows, sql).toHaveLength(1)
    }
    await c.end()
  })
})
