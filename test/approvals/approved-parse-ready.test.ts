/**
 * An approval given at a Parse covers the statement as the session stood, up to its Bind. Policy
 * counts the change such a statement makes (a function replaced) from its Parse, and takes the
 * first idle ReadyForQuery after that as the change's end: so a client that sent a Sync between
 * the approved Parse and its Bind had the session
 * settled before the change ran. It then bound and executed the change and, behind it in the same
 * implicit transaction, a call of the function it had just replaced: the call was judged by the
 * catalog as committed (the old, harmless body) and ran the new one, which no reviewer saw called.
 * Real tunnel, real IdP, real PostgreSQL, a raw wire client.
 */
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, beforeEach, describe, expect, it} from 'vitest'
import {decide} from '../../src/approvals/review.js'
import {decodeNotice} from '../../src/wire/backend.js'
import {withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import type {RawClient, RawMessage} from '../helpers/raw-client.js'
import {approvalSetting, type ApprovalSetting} from './helpers.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m'].join('\n')
const {parse, bind, execute, sync, query} = serialize

const errors = (msgs: RawMessage[]) => msgs.filter((m) => m.code === 'E').map((m) => decodeNotice(m.body).message)

describe('an approved Parse, and a ReadyForQuery before its Bind', () => {
  let s: ApprovalSetting
  beforeAll(async () => {
    s = await approvalSetting({database: 'approved_parse', target: TARGET, requester: 'alice', others: ['bob']})
    await withClient(s.db.url, (c) => c.query('create sequence ran_seq'))
  })
  // Each case starts from the harmless body (a case that fails would leave the replaced one).
  beforeEach(() => withClient(s.db.url, (c) => c.query('create or replace function counted() returns int language plpgsql stable as $$ begin return 1; end $$')))
  afterAll(() => s?.close())

  /** How many times the replaced body ran (nextval survives any rollback). */
  const runs = () => withClient(s.db.url, async (c) => Number((await c.query('select last_value, is_called from ran_seq')).rows.map((r) => (r.is_called ? r.last_value : 0))[0]))
  const REPLACE = "create or replace function counted() returns int language plpgsql volatile as $$ begin perform nextval('ran_seq'); return 1; end $$"
  const CALL = [parse({text: 'select counted()'}), bind({}), execute({})]

  /** Reads up to the notice that a statement waits for approval, and has bob decide it. */
  const decideHeld = async (raw: RawClient, action: 'approve' | 'deny'): Promise<RawMessage[]> => {
    const seen: RawMessage[] = []
    let id: string | undefined
    await waitFor(async () => {
      const m = await raw.next()
      seen.push(m)
      if (m.code === 'N') id = /waiting for approval (apr-[a-z0-9]+)/.exec(decodeNotice(m.body).message)?.[1]
      return id !== undefined || m.code === 'Z'
    }, 'a statement is held for a reviewer')
    expect(id, JSON.stringify(errors(seen))).toBeDefined()
    await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, action === 'deny' ? {id: id!, action, reason: 'not this call'} : {id: id!, action})
    return seen
  }

  // (A simple query, or the query the tunnel sends for a refused FunctionCall, drops the unnamed
  // statement, the only one an approval covers: its Bind is refused as unknown.)
  const BETWEEN: [string, Buffer[], number][] = [
    ['a Sync', [sync()], 1],
    ['two Syncs', [sync(), sync()], 2],
    ['a Flush and a Sync', [serialize.flush(), sync()], 1],
    ['a Describe of the statement and a Sync', [serialize.describe({type: 'S'}), sync()], 1],
  ]
  for (const [what, between, readies] of BETWEEN) {
    it(`refuses the Bind after ${what}, and nothing runs the replaced body`, async () => {
      const before = await runs()
      const raw = await s.t.raw()
      raw.send(query('select 1'))
      await raw.untilReady()
      raw.send(parse({text: REPLACE}), ...between)
      await decideHeld(raw, 'approve')
      for (let i = 0; i < readies; i++) await raw.untilReady()
      raw.send(bind({}), execute({}), ...CALL, sync())
      const ran = await raw.untilReady()
      raw.end()
      expect(errors(ran).join('\n')).toMatch(/approved at its Parse, and the client sent a Sync between its Parse and its Bind/)
      expect(await runs()).toBe(before)
    })
  }

  it('runs the approved change sent with its Bind, and refuses the call behind it', async () => {
    const before = await runs()
    const raw = await s.t.raw()
    raw.send(query('select 1'))
    await raw.untilReady()
    raw.send(parse({text: REPLACE}), bind({}), execute({}), ...CALL, sync())
    await decideHeld(raw, 'approve')
    // The call is judged by the change the session has not committed: it needs a reviewer too, and
    // it comes behind an Execute with no Sync between, whose settings the server has not reported
    // yet (settings-pipelined.test.ts): it is refused at once rather than shown with settings that
    // may not be the ones it runs under.
    const ran = await raw.untilReady()
    raw.end()
    expect(errors(ran).join('\n')).toMatch(/rule default\.unsettled-catalog-approval\) and was sent behind statements the server has not finished answering/)
    expect(await runs()).toBe(before)
  })
})
