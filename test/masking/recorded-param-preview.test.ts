/**
 * A bound value echoed in the result, in the recording's preview. Its parameter is recorded
 * `[masked]` (`select $1` proves nothing about the value), but the client is shown its own value
 * as a clean one, and the preview keeps the rows as the client received them: the value was in
 * the recording all the same. Attack: echo the value through the select list, an expression, a
 * CTE, a VALUES list, a JSON document, a number, or EXPLAIN's plan (which prints the value even
 * where the query only compares it with a column), through the tunnel.
 */
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import {sampleSchemaSql} from '../../src/demo/sample-data.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {recordedStatements} from '../audit/helpers.js'

const NAME = 'Dora Quill'

const ECHOED: {sql: string; values: string[]; seen: string}[] = [
  {sql: 'select $1::text as n', values: [NAME], seen: NAME},
  {sql: 'select id, $1::text as n from customers where id = 1', values: [NAME], seen: NAME},
  {sql: 'select upper($1) as n', values: [NAME], seen: NAME.toUpperCase()},
  {sql: "select format('%s!', $1::text) as n", values: [NAME], seen: `${NAME}!`},
  {sql: 'with x as (select $1::text as v) select v from x', values: [NAME], seen: NAME},
  {sql: 'select * from (values ($1::text)) v(n)', values: [NAME], seen: NAME},
  {sql: "select json_build_object('k', $1::text) as n", values: [NAME], seen: NAME},
  {sql: 'select $1::int8 + 0 as n', values: ['900123456'], seen: '900123456'},
  // The plan prints the value the planner was given, whatever place the query gives it.
  {sql: 'explain select id from customers where full_name = $1', values: [NAME], seen: NAME},
  {sql: 'explain (costs off) select id from orders where status = $1', values: [NAME], seen: NAME},
]

/** A value proven clean, echoed: kept, as its parameter is. */
const KEPT = {sql: 'select id, status from orders where status = $1 order by id limit 1', values: ['paid']}

describe('values echoed in the result, in the recorded preview', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel | undefined
  let statements: StatementData[]

  beforeAll(async () => {
    db = await createTestDatabase('recpreview')
    await withClient(db.url, async (c) => {
      await c.query(sampleSchemaSql())
    })
    const bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-recpreview-'))}`
    t = await openPipelineTunnel(db, '', {top: `bucket: ${bucketUrl}`})
    const c = await t.client()
    for (const k of ECHOED) {
      // The client is shown its own value.
      const r = await c.query({text: k.sql, values: k.values, rowMode: 'array'})
      expect(JSON.stringify(r.rows), k.sql).toContain(k.seen)
    }
    await c.query(KEPT.sql, KEPT.values)
    await t.close()
    t = undefined
    statements = await recordedStatements(bucketUrl)
  })
  afterAll(async () => {
    await t?.close()
  })

  it('masks the preview of a statement whose parameters it masks', () => {
    for (const k of ECHOED) {
      const s = statements.find((x) => x.sql === k.sql)
      expect(s?.params, k.sql).toEqual(['[masked]'])
      expect(s?.preview?.rows.length, k.sql).toBeGreaterThan(0)
      expect(JSON.stringify(s?.preview), k.sql).not.toContain(k.seen)
      expect(JSON.stringify(s?.preview), k.sql).not.toContain('Quill')
    }
  })

  it('keeps the preview of a statement whose parameters are proven clean', () => {
    const s = statements.find((x) => x.sql === KEPT.sql)
    expect(s?.params).toEqual(['paid'])
    expect(s?.preview?.rows).toEqual([[expect.any(String), 'paid']])
  })
})
