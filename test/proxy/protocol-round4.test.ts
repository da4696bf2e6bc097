/**
 * Attacks on the tunnel's view of the session, round 4, through the tunnel exactly as `dbgate
 * connect` builds it (the real pipeline: policy with its catalog lookups, masking, recording) and
 * a real server, with a raw wire client. Each family first shows what the server does, then that
 * the tunnel's record of the session cannot be made to differ from it.
 */
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {codes, type RawMessage} from '../helpers/raw-client.js'
import {sampleCustomers} from '../../src/demo/sample-data.js'
import {buildTunnelHooks} from '../../src/pipeline/index.js'
import {decodeDataRow, decodeNotice} from '../../src/wire/backend.js'

const {query, parse, bind, execute, sync, close} = serialize

function errors(msgs: RawMessage[]): string[] {
  return msgs.filter((m) => m.code === 'E').map((m) => `${decodeNotice(m.body).code} ${decodeNotice(m.body).message}`)
}

/** Function definitions may be created through the tunnel; what a call runs is judged by the body. */
const RULES = ['rules:', '  - id: functions', '    match: {command: create_function}', '    action: allow'].join('\n')

describe('the session as the server acknowledged it, round 4', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel
  beforeAll(async () => {
    db = await createTestDatabase()
    await withClient(db.url, (c) => c.query('create sequence ran_seq; create function rt4_f() returns int language plpgsql stable as $$ begin return 1; end $$'))
    t = await openPipelineTunnel(db, RULES)
  }, 120_000)
  afterAll(async () => {
    await t?.close()
  })

  /** How many times a body that counts its runs (nextval survives the rollback) has run. */
  const runs = () => withClient(db.url, async (c) => Number((await c.query('select last_value, is_called from ran_seq')).rows.map((r) => (r.is_called ? r.last_value : 0))[0]))

  describe('family 13: a portal bound from an SQL-prepared statement, judged again after the name was prepared again', () => {
    // A portal bound from `PREPARE s AS …` was judged again at its Execute (after a change to the
    // catalog since its Bind) as `EXECUTE s`, which policy reads as whatever `s` holds now. So a
    // client bound `s` while its function was harmless, replaced the function, prepared `s` again
    // as `SELECT 1`, and the Execute of the old portal was judged as `SELECT 1` and ran the new body.
    const replace = query("create or replace function rt4_f() returns int language plpgsql volatile as $$ begin perform nextval('ran_seq'); return 1; end $$")
    const CASES: [string, Buffer[][]][] = [
      ['DEALLOCATE, then PREPARE', [[query('deallocate s13')], [query('prepare s13 as select 1')]]],
      ['DEALLOCATE and PREPARE in one text', [[query('deallocate s13; prepare s13 as select 1')]]],
      ['DEALLOCATE ALL, then a protocol Parse of the name', [[query('deallocate all')], [parse({name: 's13', text: 'select 1'}), sync()]]],
      ['a protocol Close and Parse of the name', [[close({type: 'S', name: 's13'}), parse({name: 's13', text: 'select 1'}), sync()]]],
      ['DEALLOCATE only', [[query('deallocate s13')]]],
    ]
    for (const [what, redefine] of CASES) {
      for (const piped of [false, true]) {
        it(`refuses the Execute: ${what}${piped ? ', all sent in one write' : ''}`, async () => {
          const before = await runs()
          const raw = await t.raw()
          const steps = [[query('begin')], [query('prepare s13 as select rt4_f()')], [bind({statement: 's13', portal: 'p13'}), sync()], [replace], ...redefine, [execute({portal: 'p13'}), sync()]]
          const got: RawMessage[][] = []
          if (piped) raw.send(...steps.flat())
          for (const step of steps) {
            if (!piped) raw.send(...step)
            got.push(await raw.untilReady())
          }
          raw.send(query('rollback'))
          await raw.untilReady()
          raw.end()
          expect(errors(got.slice(0, -1).flat())).toEqual([])
          // (A DEALLOCATE the server has not answered yet leaves the name as it was: policy then refuses the Execute itself.)
          if (what === 'DEALLOCATE only') expect(errors(got.at(-1)!)).toHaveLength(1)
          else expect(errors(got.at(-1)!).join('\n')).toMatch(/portal "p13" must be judged again .* prepared statement "s13", which it was bound from, has been deallocated or prepared again since its Bind/)
          expect(await runs()).toBe(before)
        })
      }
    }

    it('is judged as what it runs when the name stayed, and runs when nothing changed', async () => {
      const before = await runs()
      const raw = await t.raw()
      raw.send(query('prepare s13b as select rt4_f()'))
      await raw.untilReady()
      raw.send(query('begin'))
      await raw.untilReady()
      raw.send(bind({statement: 's13b', portal: 'p13'}), execute({portal: 'p13'}), sync())
      expect(codes(await raw.untilReady())).toBe('2DCZ')
      raw.send(bind({statement: 's13b', portal: 'p13b'}), sync())
      await raw.untilReady()
      raw.send(replace)
      await raw.untilReady()
      raw.send(execute({portal: 'p13b'}), sync())
      const ran = await raw.untilReady()
      raw.send(query('rollback'))
      await raw.untilReady()
      raw.end()
      expect(errors(ran).join('\n')).toMatch(/default\.unsettled-catalog-approval/)
      expect(await runs()).toBe(before)
    })
  })

  describe('family 14: a verdict that waited, while the reply that opened a transaction arrived', () => {
    // A statement's context carries the transaction status of the last ReadyForQuery as it was when
    // its judgement began, and the session's ReadyForQuery count as it is. Policy and masking took a
    // change of the session as over when the count had passed the change's own reply and the status
    // said idle: a judgement that waited (a catalog lookup, the change gate, an approval, a long
    // text parsed off the event loop) while the reply to `BEGIN; <change>` arrived paired the count
    // after that reply with the status before it ('I'), and settled a change still uncommitted. The
    // catalog, read again as committed, then showed the state before it: masking read a column
    // renamed in the open transaction by its old name, and policy judged a call by the body the
    // function had before it was replaced.
    const SLOW = '/* waits */'
    let gate: Promise<void> = Promise.resolve()
    let release: () => void = () => {}
    let slow: PipelineTunnel
    beforeAll(async () => {
      const names = sampleCustomers().map((c, i) => `(${i + 1}, '${c.fullName.replace(/'/g, "''")}', 'US')`)
      await withClient(db.url, (c) => c.query(`create table people (id int, full_name text, country text); insert into people values ${names.join(', ')}`))
      // Every stage as \`dbgate connect\` builds them; texts marked SLOW wait, before the first stage
      // judges them, until the test lets them go (as a statement waits for a lookup or a reviewer).
      slow = await openPipelineTunnel(db, `${RULES}\n  - id: ddl\n    match: {class: ddl}\n    action: allow`, {
        hooks: async (ctx) => {
          const hooks = await buildTunnelHooks(ctx)
          const statement = hooks.statement!
          return {...hooks, statement: (sql, sctx) => (sql.includes(SLOW) ? gate.then(() => statement(sql, sctx)) : statement(sql, sctx))}
        },
      })
    }, 120_000)
    afterAll(async () => {
      await slow?.close()
    })

    /** Sends `change` and `read` in one write; lets `read`'s judgement go on once the reply to `change` has arrived. */
    const pipelined = async (change: string, read: string): Promise<RawMessage[]> => {
      gate = new Promise<void>((r) => (release = r))
      const raw = await slow.raw()
      raw.send(query('select 1'))
      await raw.untilReady()
      raw.send(query(change), query(`${SLOW} ${read}`))
      const first = await raw.untilReady()
      expect(codes(first).endsWith('Z')).toBe(true)
      expect(errors(first), change).toEqual([])
      release()
      const got = await raw.untilReady()
      raw.send(query('rollback'))
      await raw.untilReady()
      raw.end()
      return got
    }

    const NAMES = sampleCustomers().map((c) => c.fullName)
    const SWAPS = [
      'begin; alter table people rename full_name to tmp; alter table people rename country to full_name; alter table people rename tmp to country',
      'start transaction; alter table people rename column full_name to country_x; alter table people rename column country to full_name; alter table people rename column country_x to country',
      'begin isolation level read committed; alter table people rename full_name to tmp; alter table people rename country to full_name; alter table people rename tmp to country',
    ]
    const READS = ['select (select country) as s from people', "select country || '' as s from people", 'select case when true then country end as s from people']
    for (const change of SWAPS) {
      for (const read of READS) {
        it(`masks a column renamed in the open transaction: ${change.slice(0, 30)}…; ${read}`, async () => {
          const got = await pipelined(change, read)
          const values = got.filter((m) => m.code === 'D').flatMap((m) => decodeDataRow(m.body).map((v) => v?.toString('utf8') ?? ''))
          expect(values.length > 0 || errors(got).length > 0).toBe(true)
          expect(NAMES.filter((n) => values.some((v) => v.includes(n)))).toEqual([])
        })
      }
    }

    it('judges a call by the body the open transaction gave its function', async () => {
      await withClient(db.url, (c) => c.query('create function rt4_g() returns int language plpgsql stable as $$ begin return 1; end $$'))
      const before = await runs()
      const replace = "begin; create or replace function rt4_g() returns int language plpgsql volatile as $$ begin perform nextval('ran_seq'); return 1; end $$"
      const got = await pipelined(replace, 'select rt4_g()')
      expect(errors(got).join('\n')).toMatch(/default\.unsettled-catalog-approval/)
      expect(await runs()).toBe(before)
    })
  })
})
