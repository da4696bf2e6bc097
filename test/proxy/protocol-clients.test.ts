/**
 * The protocol state with real clients, through the real tunnel and real masking: psql's
 * PREPARE/EXECUTE and cursors (name reuse included), and node-postgres's named statements and
 * pipelining with errors in the middle. What each client sees must be what the server did, masked.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createMaskingFilterFactory} from '../../src/masking/filter.js'
import {leaked, maskingFixture, NO_CONFIG, type MaskingFixture} from '../masking/fixture.js'
import {pgEnv, run} from '../helpers/run.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'

describe('real clients and the protocol state', () => {
  let fx: MaskingFixture
  let t: TestTunnel
  beforeAll(async () => {
    fx = await maskingFixture()
    t = await startTunnel(fx.db, {resultFilter: createMaskingFilterFactory({catalog: fx.catalog, masking: NO_CONFIG, identity: {groups: [], kind: 'human'}})})
  })
  afterAll(async () => {
    await t.close()
    await fx.close()
  })

  it('psql: PREPARE, a refused second PREPARE of the name, EXECUTE, cursors WITH HOLD and FETCH, all masked', async () => {
    const script = [
      "prepare p as select full_name || '' as a from customers order by id;",
      "prepare p as select 'nobody'::text as a;",
      'execute p;',
      "declare c cursor with hold for select address || '' as b from customers order by id;",
      "declare c cursor with hold for select 'nowhere'::text as b;",
      'fetch 2 from c;',
      'close c;',
      'deallocate p;',
      'execute p;',
      'select 41 + 1 as answer;',
    ].join('\n')
    const r = await run('psql', ['-X', '-At', '-v', 'ON_ERROR_STOP=0'], {env: pgEnv(t.port, t.secret, fx.db.database), input: script})
    expect(r.stderr).toMatch(/prepared statement "p" already exists/)
    expect(r.stderr).toMatch(/cursor "c" already exists/)
    expect(r.stderr).toMatch(/prepared statement "p" does not exist/)
    expect(leaked(r.stdout, fx.secrets)).toEqual([])
    const lines = r.stdout.trim().split('\n')
    expect(lines.length).toBeGreaterThan(3)
    expect(lines.at(-1)).toBe('42')
    expect(lines).not.toContain('nobody')
    expect(lines).not.toContain('nowhere')
  })

  it('psql with FETCH_COUNT: its own cursor, declared, fetched in pieces and closed inside a transaction', async () => {
    const r = await run('psql', ['-X', '-At', '-v', 'FETCH_COUNT=3', '-c', "select full_name || '' as a from customers order by id"], {env: pgEnv(t.port, t.secret, fx.db.database)})
    expect(r.stderr).toBe('')
    const direct = await run('psql', ['-X', '-At', '-c', 'select count(*) from customers'], {env: pgEnv(t.port, t.secret, fx.db.database)})
    expect(r.stdout.trim().split('\n')).toHaveLength(Number(direct.stdout.trim()))
    expect(leaked(r.stdout, fx.secrets)).toEqual([])
  })

  it('node-postgres: named statements reused across queries, and a pipeline with a failure in the middle', async () => {
    const c = await t.client({pipeline: true} as object)
    const named = {name: 'by-id', text: "select full_name || '' as a from customers where id = $1"}
    const results = await Promise.allSettled([
      c.query({...named, values: [1]}),
      c.query('select * from no_such_table'),
      c.query({...named, values: [2]}),
      c.query('select $1::int * 2 as doubled', [21]),
    ])
    expect(results.map((x) => x.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled'])
    const rows = results.flatMap((x) => (x.status === 'fulfilled' ? x.value.rows : []))
    expect(leaked(JSON.stringify(rows), fx.secrets)).toEqual([])
    expect(rows.at(-1)).toEqual({doubled: 42})
    const again = await c.query({...named, values: [3]})
    expect(again.rows).toHaveLength(1)
    expect(leaked(JSON.stringify(again.rows), fx.secrets)).toEqual([])
  })
})
