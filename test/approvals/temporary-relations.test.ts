/**
 * pg_temp is searched first for relations, so a temporary view or table of the session takes the
 * place of the table of the same name for every unqualified name after it. Its CREATE TEMP was
 * reviewed once, and long gone from "Earlier in this session" when a later statement was held: the
 * reviewer read `create table report as select * from orders`, took `orders` for the table they
 * know, and approved a copy of payroll. The request now names each temporary relation the text (or
 * a prepared statement it executes) reaches, with a view's definition, as the server holds it; a
 * change to them while the statement waits voids the approval. Real tunnel, real IdP, real
 * PostgreSQL, a raw wire client, the interactive view rendered with ink-testing-library.
 */
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decide} from '../../src/approvals/review.js'
import {readRequest} from '../../src/approvals/store.js'
import {withClient} from '../helpers/pg.js'
import type {RawClient} from '../helpers/raw-client.js'
import {approvalSetting, errorsUntilReady, heldOnWire, shownToReviewer, type ApprovalSetting} from './helpers.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m'].join('\n')
const {query} = serialize

describe('a temporary relation in place of the table a reviewer has in mind', () => {
  let s: ApprovalSetting
  beforeAll(async () => {
    s = await approvalSetting({database: 'temporary_relations', target: TARGET, requester: 'alice', others: ['bob']})
    await withClient(s.db.url, (c) => c.query('create table orders (id int, amount int); create table payroll (id int, salary int); insert into payroll values (1, 100)'))
  })
  afterAll(() => s?.close())

  async function approved(raw: RawClient, sql: string): Promise<void> {
    const id = await heldOnWire(raw, query(sql))
    await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'approve'})
    expect(await errorsUntilReady(raw), sql).toEqual([])
  }
  const ran = (name: string) => withClient(s.db.url, async (c) => (await c.query('select count(*)::int as n from pg_tables where tablename = $1', [name])).rows[0].n as number)

  const cases: [string, string, string, RegExp][] = [
    ['a temporary view', 'create temp view orders as select * from payroll', 'create table report_v as select * from orders', /where orders is a temporary view of this session: SELECT id,\s*salary\s+FROM payroll/i],
    ['a temporary table', 'create temp table orders (id int, amount int)', 'create table report_t as select * from orders', /where orders is a temporary table of this session, not the one of the same name in a schema/],
    ['pg_temp written out', 'create temp view orders as select * from payroll', 'create table report_q as select * from pg_temp.orders', /where orders is a temporary view of this session/],
  ]
  for (const [what, create, statement, says] of cases) {
    it(`names ${what} the text reaches (${statement})`, async () => {
      const raw = await s.t.raw()
      await approved(raw, create)
      // The CREATE TEMP scrolls out of what the reviewer is shown of the session.
      for (let i = 0; i < 6; i++) {
        raw.send(query(`select ${i}`))
        expect(await errorsUntilReady(raw)).toEqual([])
      }
      const id = await heldOnWire(raw, query(statement))
      const request = (await readRequest(s.bucket, id))!
      expect(request.recent.map((r) => r.sql).join('\n')).not.toMatch(/create temp/)
      expect(request.temporary?.map((t) => t.name)).toEqual(['orders'])
      for (const text of shownToReviewer(request)) expect(text, what).toMatch(says)
      await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'deny', reason: 'x'})
      expect((await errorsUntilReady(raw)).join('; ')).toMatch(/denied/)
      raw.end()
    })
  }

  it('names no temporary relation the text does not reach, and runs the statement once approved', async () => {
    const raw = await s.t.raw()
    await approved(raw, 'create temp table scratch (id int)')
    const id = await heldOnWire(raw, query('create table report_n as select * from orders'))
    expect((await readRequest(s.bucket, id))!.temporary).toBeUndefined()
    await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'approve'})
    expect(await errorsUntilReady(raw)).toEqual([])
    raw.end()
    expect(await ran('report_n')).toBe(1)
  })
})
