/**
 * Large objects removed or overwritten through the tunnel. A call such as lo_unlink runs once per
 * row of whatever it is called over, and no WHERE bounds which objects that reaches, so one
 * statement could remove every large object in the database: the default pack holds each such
 * statement for a reviewer (default.large-object-approval). Before, they were allowed as
 * "filtered writes". The objects are read back directly afterwards, not just the error.
 */
import type pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {policyCheckOutput} from '../helpers/policy-check.js'

type Refusal = Error & {code?: string; detail?: string}

/** INV_WRITE of libpq-fs.h: lo_open's mode for writing. */
const INV_WRITE = 0x20000

describe('large objects removed or overwritten through the tunnel', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  /** The large objects the application keeps, and what each holds. */
  let kept: {oid: number; data: string}[]
  const direct = <T>(fn: (c: pg.Client) => Promise<T>) => withClient(db.url, fn)
  const objects = () =>
    direct(async (c) => (await c.query("select oid::int oid, convert_from(lo_get(oid), 'UTF8') data from pg_largeobject_metadata order by oid")).rows as {oid: number; data: string}[])

  beforeAll(async () => {
    db = await createTestDatabase()
    await direct(async (c) => {
      for (const data of ['invoice 1', 'invoice 2', 'contract']) await c.query('select lo_from_bytea(0, convert_to($1, $2))', [data, 'UTF8'])
      await c.query('create view lo_wiper as select lo_unlink(oid) as gone from pg_largeobject_metadata')
    })
    kept = await objects()
    expect(kept).toHaveLength(3)
    t = await openPipelineTunnel(db)
  })
  afterAll(() => t.close())

  it('holds every call that removes or overwrites them for a reviewer, and they are all still there', async () => {
    const [first] = kept
    const statements: [string, unknown[]?][] = [
      ['select lo_unlink(oid) from pg_largeobject_metadata'],
      [`select lo_unlink(${first!.oid})`],
      ['select pg_catalog.lo_unlink($1::oid)', [first!.oid]],
      ['select count(lo_unlink(m.oid)) from pg_catalog.pg_largeobject_metadata m where m.oid > 0'],
      ['with gone as (select lo_unlink(oid) from pg_largeobject_metadata) select * from gone'],
      ['explain analyze select lo_unlink(oid) from pg_largeobject_metadata'],
      ['prepare wipe as select lo_unlink(oid) from pg_largeobject_metadata'],
      ['select * from lo_wiper'],
      [`select lo_truncate(lo_open(oid, ${INV_WRITE}), 0) from pg_largeobject_metadata`],
      [`select lo_truncate64(lo_open(oid, ${INV_WRITE}), 0) from pg_largeobject_metadata`],
      ["select lo_put(oid, 0, '\\x00'::bytea) from pg_largeobject_metadata"],
      [`select lowrite(lo_open(oid, ${INV_WRITE}), 'overwritten') from pg_largeobject_metadata`],
    ]
    // Each in a transaction of its own, as a client in autocommit sends it: nothing rolls back a removal that got through.
    const c = await t.client()
    const outcomes: [string, Refusal | undefined][] = []
    for (const [sql, params] of statements) {
      outcomes.push([
        sql,
        (await c.query(sql, params).then(
          () => undefined,
          (error: Refusal) => error,
        )) as Refusal | undefined,
      ])
    }
    await c.end()
    expect(await objects()).toEqual(kept)
    for (const [sql, e] of outcomes) {
      expect(e, sql).toBeInstanceOf(Error)
      expect(e!.code, sql).toBe('42501')
      expect(e!.message, sql).toMatch(/requires approval by a reviewer \(rule default\.large-object-approval\): this statement removes or overwrites large objects/)
    }
  })

  it("still refuses lo_import and lo_export, which reach the server's files", async () => {
    const c = await t.client()
    for (const sql of ["select lo_import('/etc/passwd')", `select lo_export(${kept[0]!.oid}, '/tmp/dbgate-lo-export')`]) {
      await expect(c.query(sql), sql).rejects.toMatchObject({code: '42501', message: expect.stringMatching(/rule default\.no-server-functions/)})
    }
    await c.end()
    expect(await objects()).toEqual(kept)
  })

  it('still lets large objects be created and read', async () => {
    const c = await t.client()
    const {rows} = await c.query("select lo_from_bytea(0, convert_to('receipt', 'UTF8'))::int as oid")
    const oid = rows[0].oid as number
    // Reading is allowed (what masking shows of the bytes is masking's business).
    expect((await c.query('select lo_get($1::oid) as data', [oid])).rows).toHaveLength(1)
    await c.end()
    expect((await objects()).map((o) => o.data)).toEqual([...kept.map((o) => o.data), 'receipt'])
    await direct((d) => d.query('select lo_unlink($1::oid)', [oid]))
  })

  it('shows the rule in `dbgate policy check`', async () => {
    const out = await policyCheckOutput("select lo_unlink(oid) from pg_largeobject_metadata; select lo_put(16400, 0, '\\x00')")
    expect(out).toContain('[1] APPROVAL select (write)  rule default.large-object-approval')
    expect(out).toContain('[2] APPROVAL select (write)  rule default.large-object-approval')
    expect(out).toMatch(/pg_catalog\.lo_unlink removes or overwrites a large object \(once for every row it is called over\)/)
    expect(out).toContain('`- match: {class: write, command: function, functions: [pg_catalog.lo_put]}` with `action: allow`')
  })
})
