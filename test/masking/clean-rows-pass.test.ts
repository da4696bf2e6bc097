/**
 * Rows of a result whose every column is proven clean (a plan with no work) go through the
 * result filter untouched and are handed to the tunnel's output as ranges of the read they came
 * in, not as views of their own (docs/performance-history.md, "Ninth round", h-wire3). In one read they
 * sit between rows the filter rewrites: through the tunnel as `dbgate connect` builds it, clean
 * and masked results alternating in one simple Query, in one pipelined extended batch, and row
 * by row in one result, must come out in order, the clean values as they are and every e-mail
 * masked. A filter that let a run of rows through whole, or an output that put a passed range
 * after the rewritten rows that followed it, fails these.
 */
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decodeDataRow} from '../../src/wire/backend.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import type {RawClient, RawMessage} from '../helpers/raw-client.js'

const ROWS = 40
const emailOf = (i: number) => `person${i}.secret@example.com`

describe('clean rows passed as ranges among masked ones', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  let raw: RawClient

  beforeAll(async () => {
    db = await createTestDatabase('cleanpass')
    await withClient(db.url, (c) =>
      c.query(
        `create table pass_people (id int primary key, email text);
         insert into pass_people select i, 'person' || i || '.secret@example.com' from generate_series(1, ${ROWS}) i`,
      ),
    )
    t = await openPipelineTunnel(db)
    raw = await t.raw()
  }, 60_000)
  afterAll(() => t?.close())

  /** Each result's values, row by row, in the order the client got them. */
  async function results(...messages: Buffer[]): Promise<string[][][]> {
    raw.send(...messages)
    const out: string[][][] = []
    let open = false
    for (const m of (await raw.untilReady()) as RawMessage[]) {
      if (m.code === 'E') throw new Error(`unexpected error: ${m.body.toString('utf8')}`)
      if (m.code === 'T' || (m.code === 'D' && !open)) {
        out.push([])
        open = true
      }
      if (m.code === 'C') open = false
      if (m.code === 'D') out.at(-1)!.push(decodeDataRow(m.body).map((v) => v?.toString('utf8') ?? 'NULL'))
    }
    return out
  }

  const ids = Array.from({length: ROWS}, (_, i) => [String(i + 1)])
  const expectMasked = (rows: string[][]) => {
    expect(rows).toHaveLength(ROWS)
    for (const [i, row] of rows.entries()) {
      expect(row).toHaveLength(2)
      expect(row[0]).toBe(String(i + 1))
      expect(row[1]).not.toContain('secret')
    }
  }

  it('alternating clean and masked results in one simple Query', async () => {
    const clean = 'SELECT id FROM pass_people ORDER BY id'
    const sensitive = 'SELECT id, email FROM pass_people ORDER BY id'
    const out = await results(serialize.query(`${clean}; ${sensitive}; ${clean}; ${sensitive}; ${clean}`))
    expect(out).toHaveLength(5)
    expect(out[0]).toEqual(ids)
    expectMasked(out[1]!)
    expect(out[2]).toEqual(ids)
    expectMasked(out[3]!)
    expect(out[4]).toEqual(ids)
  })

  it('clean and masked rows within one result, row by row', async () => {
    // Odd ids come back clean (NULL e-mail), even ones with an e-mail to mask: runs of one row each.
    const [rows] = await results(serialize.query('SELECT id, CASE WHEN id % 2 = 1 THEN NULL ELSE email END AS email FROM pass_people ORDER BY id'))
    expect(rows).toHaveLength(ROWS)
    for (const [i, row] of rows!.entries()) {
      expect(row[0]).toBe(String(i + 1))
      if ((i + 1) % 2 === 1) expect(row[1]).toBe('NULL')
      else expect(row[1]).not.toContain('secret')
    }
  })

  it('alternating clean and masked portals in one pipelined extended batch', async () => {
    const batch: Buffer[] = []
    const texts = ['SELECT id FROM pass_people ORDER BY id', 'SELECT id, email FROM pass_people ORDER BY id']
    for (let k = 0; k < 4; k++) {
      batch.push(serialize.parse({text: texts[k % 2]!}), serialize.bind({}), serialize.describe({type: 'P'}), serialize.execute({}))
    }
    batch.push(serialize.sync())
    const out = await results(...batch)
    expect(out).toHaveLength(4)
    for (let k = 0; k < 4; k++) {
      if (k % 2 === 0) expect(out[k]).toEqual(ids)
      else expectMasked(out[k]!)
    }
    // And the e-mails never reach the client in any form.
    for (const r of out) for (const row of r) for (const v of row) expect(v).not.toMatch(/person\d+\.secret/)
    expect(emailOf(2)).toContain('secret')
  })
})
