/**
 * The tunnel decodes a RowDescription once and reuses the decoded columns for the next one with
 * the same bytes (docs/performance-history.md, "Eighth round"). Equal bytes do not mean equal meaning:
 * a computed column has no origin, so `SELECT 'x' AS v` and `SELECT lower(email) AS v FROM …`
 * describe their rows byte for byte alike, and only the statement's lineage tells the second is an
 * e-mail. Through the tunnel as `dbgate connect` builds it, every such pair, in one simple Query
 * (one result filter, two results), in consecutive Queries, and between the extended protocol's
 * Describe and a simple Query, must mask the sensitive result and leave the clean one alone.
 */
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decodeDataRow} from '../../src/wire/backend.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import type {RawClient, RawMessage} from '../helpers/raw-client.js'

const EMAIL = 'ada.lovelace@example.com'
const CLEAN = `SELECT 'plain words'::text AS v`
const SENSITIVE = 'SELECT lower(email) AS v FROM reuse_people'

describe('RowDescriptions with equal bytes and different meaning', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  let raw: RawClient

  beforeAll(async () => {
    db = await createTestDatabase('reusedesc')
    await withClient(db.url, (c) => c.query(`create table reuse_people (id int primary key, email text); insert into reuse_people values (1, '${EMAIL}')`))
    t = await openPipelineTunnel(db)
    raw = await t.raw()
  }, 60_000)
  afterAll(() => t?.close())

  /** Each result of one exchange: its description's bytes and its values. */
  async function results(...messages: Buffer[]): Promise<{description: string; values: string[]}[]> {
    raw.send(...messages)
    const out: {description: string; values: string[]}[] = []
    for (const m of (await raw.untilReady()) as RawMessage[]) {
      if (m.code === 'E') throw new Error(`unexpected error: ${m.body.toString('utf8')}`)
      if (m.code === 'T') out.push({description: m.body.toString('hex'), values: []})
      if (m.code === 'D') out.at(-1)!.values.push(...decodeDataRow(m.body).map((v) => v?.toString('utf8') ?? 'NULL'))
    }
    return out
  }

  const expectMasked = (values: string[]) => {
    expect(values).toHaveLength(1)
    expect(values[0]).not.toContain('lovelace')
  }

  it('in one simple Query: the second result is planned from its own statement', async () => {
    const [clean, sensitive] = await results(serialize.query(`${CLEAN}; ${SENSITIVE}`))
    // The premise: the server describes both results with the same bytes.
    expect(sensitive!.description).toBe(clean!.description)
    expect(clean!.values).toEqual(['plain words'])
    expectMasked(sensitive!.values)
    // And the other way round, and three in a row.
    const [s2, c2] = await results(serialize.query(`${SENSITIVE}; ${CLEAN}`))
    expectMasked(s2!.values)
    expect(c2!.values).toEqual(['plain words'])
    const three = await results(serialize.query(`${CLEAN}; ${SENSITIVE}; ${CLEAN}; ${SENSITIVE}`))
    expect(three.map((r) => r.description)).toEqual(Array(4).fill(clean!.description))
    expect(three[0]!.values).toEqual(['plain words'])
    expectMasked(three[1]!.values)
    expect(three[2]!.values).toEqual(['plain words'])
    expectMasked(three[3]!.values)
  })

  it('in consecutive Queries, each after the other', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await results(serialize.query(CLEAN)))[0]!.values).toEqual(['plain words'])
      expectMasked((await results(serialize.query(SENSITIVE)))[0]!.values)
      expectMasked((await results(serialize.query(SENSITIVE)))[0]!.values)
    }
  })

  it('between a described portal, its Execute and a simple Query', async () => {
    const extended = (sql: string) => [serialize.parse({text: sql}), serialize.bind({}), serialize.describe({type: 'P'}), serialize.execute({}), serialize.sync()]
    for (const [first, second] of [
      [CLEAN, SENSITIVE],
      [SENSITIVE, CLEAN],
    ] as const) {
      const [a] = await results(...extended(first))
      const [b] = await results(serialize.query(second))
      const [c] = await results(...extended(second))
      const [d] = await results(serialize.query(first))
      expect(new Set([a!.description, b!.description, c!.description, d!.description]).size).toBe(1)
      for (const [sql, r] of [
        [first, a],
        [second, b],
        [second, c],
        [first, d],
      ] as const) {
        if (sql === CLEAN) expect(r!.values).toEqual(['plain words'])
        else expectMasked(r!.values)
      }
    }
  })
})
