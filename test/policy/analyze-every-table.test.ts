import {describe, expect, it} from 'vitest'
import type pg from 'pg'
import {openPipelineTunnel} from '../helpers/open.js'
import {seededTunnel} from '../helpers/seeded-tunnel.js'
import {wipedAccounts, refusedByPolicy, WIPING_CODE} from './wiping-code.js'

/**
 * ANALYZE evaluates a table's extended statistics expressions on its sampled rows (and its index
 * expressions, and its range columns' subtype_diff). The default pack lets plain ANALYZE run at
 * once. Before, a table named was judged by its index expressions but not its statistics
 * expressions, and ANALYZE without a table list by nothing, so `analyze a_stat` and a bare
 * `analyze` ran a function that deletes every account.
 */
describe('ANALYZE and the code it evaluates', () => {
  // Qualified: ANALYZE evaluates expressions with search_path set to pg_catalog. Without autovacuum:
  // its own ANALYZE of the new rows would run them too, wiping accounts in the middle of a test.
  const {db, t, direct} = seededTunnel(`
    ${WIPING_CODE}
    create table a_stat (id int, y int) with (autovacuum_enabled = false);
    insert into a_stat select g, g from generate_series(1, 100) g;
    create statistics a_stat_st on (public.quiet(id)), y from a_stat;
    create table r_idx (id int, y int) with (autovacuum_enabled = false);
    insert into r_idx values (1, 1);
    create index r_idx_quiet on r_idx ((public.quiet(id)));
    create table plain (id int, y int) with (autovacuum_enabled = false);
    insert into plain select g, g from generate_series(1, 100) g;
  `)
  const {accounts, refill} = wipedAccounts(() => db.url)
  const refused = (c: pg.Client, sql: string, extended = false) => refusedByPolicy(c, sql, extended, 'a')


  it('judges a table named by its extended statistics expressions', async () => {
    for (const extended of [false, true]) {
      for (const sql of ['analyze a_stat', 'analyze verbose a_stat (id)', 'vacuum analyze a_stat', 'vacuum (analyze, skip_locked) plain, a_stat']) {
        await refill()
        const c = await t.client()
        const e = await refused(c, sql, extended)
        await c.end()
        expect(e.message, sql).toMatch(/rule default\.(volatile-function|no-unfiltered-delete)/)
        expect(await accounts(), sql).toBe(10)
      }
    }
  })

  it('holds ANALYZE of every table for a reviewer, saying to name the tables', async () => {
    for (const sql of ['analyze', 'analyze verbose', 'vacuum analyze', 'vacuum (verbose, analyze)']) {
      await refill()
      const c = await t.client()
      const e = await refused(c, sql)
      await c.end()
      expect(e.message, sql).toMatch(/requires approval by a reviewer \(rule default\.every-table-code\): this statement runs the code stored with every table it reaches/)
      expect(e.detail, sql).toMatch(/ANALYZE without a table list evaluates the index expressions, extended statistics expressions and range functions of every table.*name the tables/)
      expect(await accounts(), sql).toBe(10)
    }
  })

  it('holds them, and judges REINDEX of an index by its code, where a rule allows maintenance', async () => {
    const admin = await openPipelineTunnel(db, ['rules:', '  - id: maintenance', '    match: {class: admin}', '    action: allow'].join('\n'))
    try {
      for (const sql of ['analyze', 'vacuum analyze', 'reindex schema public', `reindex database ${db.database}`, 'reindex index r_idx_quiet', 'reindex index concurrently r_idx_quiet', 'analyze a_stat']) {
        await refill()
        const c = await admin.client()
        const e = await refused(c, sql)
        await c.end()
        expect(e.message, sql).toMatch(/rule default\.(every-table-code|volatile-function|no-unfiltered-delete)/)
        expect(await accounts(), sql).toBe(10)
      }
      const c = await admin.client()
      await c.query('reindex table plain')
      await c.end()
    } finally {
      await admin.close()
    }
  })

  it('still runs ANALYZE of tables whose code is built in, and VACUUM of every table', async () => {
    const c = await t.client()
    for (const sql of ['analyze plain', 'vacuum analyze plain', 'vacuum', 'vacuum (analyze false)']) await c.query(sql)
    await c.end()
  })
})
