/**
 * A statement described once (Parse, Describe of the statement) is planned again by the server at
 * a later Bind when what it reads changed; its result may then come from another table under the
 * same column names and types, which is all the server checks. The description's origins (table
 * OID, column number) are the old plan's: they must not vouch for the new one's values. Attacked
 * through the real tunnel with the raw protocol: Describe of the statement, a swap of tables by
 * renames (on the same connection, on another one, and under a text too large to analyse), then
 * Bind and Execute without describing the portal, in text and binary format.
 */
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decodeDataRow} from '../../src/wire/backend.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import type {RawClient} from '../helpers/raw-client.js'
import {maskingFixture, type MaskingFixture} from './fixture.js'

const SWAP = 'alter table t rename to t_old; alter table customers rename column full_name to x; alter table customers rename to t'
const BACK = 'alter table t rename to customers; alter table customers rename column x to full_name; alter table t_old rename to t'
/** Over the 256 KiB the analysis reads: only the server's description could vouch for its columns. */
const LARGE = `select x from t /* ${'y'.repeat(300 * 1024)} */`

describe('a statement described before what it reads was swapped', () => {
  let fx: MaskingFixture
  let tunnel: PipelineTunnel
  let names: string[]

  beforeAll(async () => {
    fx = await maskingFixture()
    await withClient(fx.db.url, (c) => c.query("create table t (id int, x text); insert into t values (1, 'clean one')"))
    names = await withClient(fx.db.url, async (c) => (await c.query('select full_name from customers')).rows.map((r) => r.full_name as string))
    tunnel = await openPipelineTunnel(fx.db, 'policy: none')
  })

  afterAll(async () => {
    await tunnel?.close().catch(() => {})
    await fx?.close()
  })

  async function simple(r: RawClient, sql: string): Promise<void> {
    r.send(serialize.query(sql))
    const msgs = await r.untilReady()
    expect(msgs.map((m) => m.code).join(''), sql.slice(0, 80)).not.toContain('E')
  }

  /** Bind and Execute of `name` without a Describe of the portal: the values the client received. */
  async function execute(r: RawClient, name: string, binary: boolean): Promise<string[]> {
    r.send(serialize.bind({statement: name, portal: '', binary} as Parameters<typeof serialize.bind>[0]), serialize.execute({portal: ''}), serialize.sync())
    const msgs = await r.untilReady()
    expect(msgs.map((m) => m.code).join('')).toMatch(/^2D+CZ$/)
    return msgs.filter((m) => m.code === 'D').flatMap((m) => decodeDataRow(m.body).map((v) => v?.toString('utf8') ?? ''))
  }

  async function described(r: RawClient, name: string, sql: string): Promise<void> {
    r.send(serialize.parse({name, text: sql}), serialize.describe({type: 'S', name}), serialize.sync())
    expect((await r.untilReady()).map((m) => m.code).join('')).toBe('1tTZ')
  }

  const cases: [string, string, boolean][] = [
    ['swapped on the same connection', 'select x from t', false],
    ['swapped on another connection', 'select x from t', true],
    ['a text too large to analyse', LARGE, false],
  ]

  for (const [label, sql, other] of cases) {
    it(`masks what it reads now: ${label}`, async () => {
      const r = await tunnel.raw()
      const s = await tunnel.raw()
      await described(r, 'st', sql)
      await simple(other ? s : r, `begin; ${SWAP}; commit`)
      try {
        const got = [...(await execute(r, 'st', false)), ...(await execute(r, 'st', true))]
        // Directly, the statement now reads every customer's name.
        expect(got).toHaveLength(2 * names.length)
        expect(names.filter((n) => got.some((v) => v.includes(n)))).toEqual([])
      } finally {
        await simple(s, `begin; ${BACK}; commit`)
      }
    })
  }

  it('keeps a clean result clean when nothing changed', async () => {
    const r = await tunnel.raw()
    await described(r, 'clean', 'select x from t')
    expect(await execute(r, 'clean', false)).toEqual(['clean one'])
  })
})
