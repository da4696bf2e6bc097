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
import {decodeNotice} from '../../src/wire/backend.js'

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
          expect(errors(got.at(-1)!).join('\n')).toMatch(/portal "p13" must be judged again .* prepared statement "s13", which it was bound from, has been deallocated or prepared again since its Bind/)
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
})
