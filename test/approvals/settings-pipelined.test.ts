/**
 * The session settings a reviewer reads with a held statement must be the ones it runs under. A
 * client that pipelined `SET DateStyle = 'ISO, DMY'` (or TimeZone, search_path) in front of the
 * statement, in one write, had the statement judged and filed before the reply to the SET arrived:
 * the reviewer read `DateStyle = ISO, MDY` beside `… where created < '01/02/2026'` (2 January) and
 * approved a statement that ran with 1 February. Such a statement is now filed once the server has
 * answered what was sent in front of it; behind an extended-protocol Execute with no Sync after it
 * (the server reports a setting with its next ReadyForQuery), it is refused, saying why. Real tunnel, real IdP, real PostgreSQL, a raw wire client.
 */
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decide} from '../../src/approvals/review.js'
import {readRequest} from '../../src/approvals/store.js'
import {decodeNotice} from '../../src/wire/backend.js'
import {withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import type {RawMessage} from '../helpers/raw-client.js'
import {approvalSetting, heldOnWire, type ApprovalSetting} from './helpers.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m'].join('\n')
const {parse, bind, execute, sync, query} = serialize

describe('settings set just in front of a held statement', () => {
  let s: ApprovalSetting
  beforeAll(async () => {
    s = await approvalSetting({database: 'settings_pipelined', target: TARGET, requester: 'alice', others: ['bob']})
    await withClient(s.db.url, (c) => c.query('create table orders (id int, created date)'))
  })
  afterAll(() => s?.close())

  const SET_DMY = "set datestyle = 'ISO, DMY'"
  const INDEX = "create index orders_recent on orders (id) where created < '01/02/2026'"
  const routes: [string, Buffer[]][] = [
    ['two simple queries', [query(SET_DMY), query(INDEX)]],
    ['a simple query, then a Parse', [query(SET_DMY), parse({text: INDEX}), bind({}), execute({}), sync()]],
    ['Parse of the SET, then of the statement', [parse({text: SET_DMY}), bind({}), execute({}), parse({text: INDEX}), bind({}), execute({}), sync()]],
    ['set_config in a simple query', [query("select set_config('datestyle', 'ISO, DMY', false)"), query(INDEX)]],
  ]
  const indexes = () => withClient(s.db.url, async (c) => (await c.query("select count(*)::int as n from pg_indexes where indexname = 'orders_recent'")).rows[0].n as number)
  for (const [route, messages] of routes) {
    it(`shows the reviewer the settings it runs under, set just in front of it (${route})`, async () => {
      const raw = await s.t.raw()
      raw.send(query("set datestyle = 'ISO, MDY'"))
      await raw.untilReady()
      raw.send(...messages)
      const seen: RawMessage[] = []
      let id: string | undefined
      await waitFor(async () => {
        const m = await raw.next()
        seen.push(m)
        if (m.code === 'N') id ??= /waiting for approval (apr-[a-z0-9]+)/.exec(decodeNotice(m.body).message)?.[1]
        return id !== undefined || m.code === 'Z' && seen.filter((x) => x.code === 'Z').length === messages.filter((b) => b[0] === 0x51 || b[0] === 0x53).length
      }, 'held, or answered')
      const said = seen.filter((m) => m.code === 'E').map((m) => decodeNotice(m.body).message)
      if (id) {
        // Held: what the reviewer reads is what it runs under.
        const request = (await readRequest(s.bucket, id))!
        await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'deny', reason: 'x'})
        expect(request.settings?.DateStyle, route).toMatch(/DMY/)
      } else {
        // Behind an Execute with no Sync after it, the server has not reported the new setting yet.
        expect(route).toBe('Parse of the SET, then of the statement')
        expect(said.join('; ')).toMatch(/sent behind statements the server has not finished answering \(no Sync came between\)/)
      }
      raw.end()
      expect(await indexes()).toBe(0)
    })
  }

  it('shows the application_name a statement (or a trigger it fires) reads with current_setting, however long ago it was set', async () => {
    // application_name is a setting any session may change, and the server reports it; an audit
    // trigger or the text itself reads it. Set six statements back, nothing on the reviewer's screen named it.
    const raw = await s.t.raw()
    raw.send(query("set application_name = 'mallory'"))
    await raw.untilReady()
    for (let i = 0; i < 6; i++) {
      raw.send(query('select 1'))
      await raw.untilReady()
    }
    const id = await heldOnWire(raw, query("create index orders_by_app on orders (id) where current_setting('application_name') = 'x'"))
    const request = (await readRequest(s.bucket, id))!
    expect(request.recent.map((r) => r.sql).join('\n')).not.toMatch(/mallory/)
    expect(request.settings?.application_name).toBe('mallory')
    await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id: id, action: 'deny', reason: 'x'})
    raw.end()
  })

  it('still holds the statement sent on its own after the SET, with the settings it runs under', async () => {
    const raw = await s.t.raw()
    raw.send(query(SET_DMY))
    await raw.untilReady()
    const id = await heldOnWire(raw, query(INDEX))
    const request = (await readRequest(s.bucket, id))!
    expect(request.settings?.DateStyle).toMatch(/DMY/)
    await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id: id, action: 'deny', reason: 'x'})
    raw.end()
  })
})
