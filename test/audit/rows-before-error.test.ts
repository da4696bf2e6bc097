import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import type {PipelineTunnel} from '../helpers/open.js'
import type {UpstreamInfo} from '../helpers/pg.js'
import {type RawClient} from '../helpers/raw-client.js'
import {recordedRawTunnel, recordedStatements} from './helpers.js'

/**
 * `rows` is read from the command tags when there are any, else from the rows sent. A text of
 * several statements whose last one fails after sending rows has tags (its earlier statements'),
 * and the rows of the failing one counted for nothing: `select 1; select ssn from people …` that
 * failed after its last row was recorded `rows: 1` while the client had read every SSN. The rows a
 * statement sent after the last tag now count as well. And a COPY TO STDOUT that failed after
 * sending its rows was recorded `rows: 0` (its rows were counted from its tag alone): each row it
 * sent counts.
 */
const savedEnv = {...process.env}
// Sends 400 rows, then fails on the 401st.
const failing = (column: string) => `select ${column} from generate_series(1, 401) i where 1 / (401 - i) >= 0`

describe('rows sent by a statement that failed after an earlier one completed', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel | undefined
  let raw: RawClient
  let bucketUrl: string

  beforeAll(async () => {
    ;({db, t, raw, bucketUrl} = await recordedRawTunnel('rowsbeforeerror', 'create table u (id int)'))
  }, 60_000)
  afterAll(async () => {
    await t?.close()
    process.env = savedEnv
  })

  // Each text, the rows the client got (and was recorded) for it.
  const TEXTS: {sql: string; rows: number}[] = [
    {sql: `select 1; ${failing('i')}`, rows: 1 + 400},
    {sql: `insert into u values (1), (2); ${failing('i::text')}`, rows: 2 + 400},
    {sql: `select 1; select 2; ${failing('i * 2')}`, rows: 2 + 400},
    // COPY TO STDOUT: each row a CopyData message.
    {sql: `copy (${failing('i * 3')}) to stdout`, rows: 400},
    {sql: `select 1; copy (${failing('i * 4')}) to stdout (format csv)`, rows: 1 + 400},
    // Controls: one statement, and a failure before any row.
    {sql: failing('i + 1'), rows: 400},
    {sql: 'select 1; select 1 / 0', rows: 1},
  ]

  it('counts them in the statement\'s rows, whatever came before', async () => {
    for (const {sql} of TEXTS) {
      raw.send(serialize.query(sql))
      const reply = await raw.untilReady()
      expect(reply.some((m) => m.code === 'E')).toBe(true)
    }
    await t!.close()
    t = undefined
    const recorded = await recordedStatements(bucketUrl)
    const of = (sql: string): StatementData | undefined => recorded.find((s) => s.sql === sql)
    expect(TEXTS.map(({sql}) => [sql, of(sql)?.outcome, of(sql)?.rows])).toEqual(TEXTS.map(({sql, rows}) => [sql, 'error', rows]))
  }, 60_000)
})
