/**
 * Before a held statement is filed, the tunnel reads the session's settings in the session itself
 * (src/proxy/own-query.ts), among them every setting ALTER DATABASE … SET or ALTER ROLE … SET
 * gives it. Some settings only superusers (and pg_read_all_settings) may read:
 * `ALTER DATABASE app SET session_preload_libraries = 'auto_explain'`, the usual way to turn
 * auto_explain on for one database, made current_setting() fail in an application role's session
 * ("permission denied to examine"), and with it the tunnel's own query: no statement of that role
 * could be held for a reviewer again, each refused. The tunnel now reads only the settings the
 * server lets the session see; the session's own custom settings are still shown. Real tunnel,
 * real IdP, real PostgreSQL, an ordinary login role, a raw wire client.
 */
import {randomBytes} from 'node:crypto'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decide} from '../../src/approvals/review.js'
import {readRequest} from '../../src/approvals/store.js'
import {withClient} from '../helpers/pg.js'
import {approvalSetting, errorsUntilReady, heldOnWire, type ApprovalSetting} from './helpers.js'

const TARGET = ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m'].join('\n')
const {query} = serialize
const ROLE = `app_${randomBytes(4).toString('hex')}`

describe('settings only privileged roles may read, given to the session by its database or role', () => {
  let s: ApprovalSetting
  beforeAll(async () => {
    s = await approvalSetting({database: 'hidden_settings', target: TARGET, requester: 'alice', others: ['bob'], loginRole: ROLE})
    await withClient(s.db.url, (c) => c.query(`create table orders (id int, tenant text); alter table orders owner to ${ROLE}`))
  })
  afterAll(() => s?.close())

  const indexes = (name: string) => withClient(s.db.url, async (c) => (await c.query('select count(*)::int as n from pg_indexes where indexname = $1', [name])).rows[0].n as number)

  const db = () => s.db.database
  const cases: [string, () => string, () => string][] = [
    ['the database: session_preload_libraries', () => `alter database ${db()} set session_preload_libraries = 'plpgsql'`, () => `alter database ${db()} reset all`],
    ['the database: dynamic_library_path', () => `alter database ${db()} set dynamic_library_path = '$libdir'`, () => `alter database ${db()} reset all`],
    ['the role: session_preload_libraries', () => `alter role ${ROLE} set session_preload_libraries = 'plpgsql'`, () => `alter role ${ROLE} reset all`],
    ['the role in the database: dynamic_library_path', () => `alter role ${ROLE} in database ${db()} set dynamic_library_path = '$libdir'`, () => `alter role ${ROLE} in database ${db()} reset all`],
    ['every role: session_preload_libraries', () => `alter role all in database ${db()} set session_preload_libraries = 'plpgsql'`, () => `alter role all in database ${db()} reset all`],
  ]
  let n = 0
  for (const [given, set, reset] of cases) {
    it(`files and runs a held statement of an ordinary role (${given})`, async () => {
      await withClient(s.db.url, (c) => c.query(set()))
      try {
        const raw = await s.t.raw()
        raw.send(query("set app.tenant = '7'"))
        expect(await errorsUntilReady(raw)).toEqual([])
        const index = `orders_hidden_${n++}`
        const id = await heldOnWire(raw, query(`create index ${index} on orders (id) where tenant = '7'`))
        const request = (await readRequest(s.bucket, id))!
        // The session's own settings are shown as before; the one it may not read is not.
        expect(request.settings?.['app.tenant']).toBe('7')
        expect(Object.keys(request.settings ?? {}).join(' ')).not.toMatch(/session_preload_libraries|dynamic_library_path/)
        await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'approve'})
        expect(await errorsUntilReady(raw)).toEqual([])
        raw.end()
        expect(await indexes(index)).toBe(1)
      } finally {
        await withClient(s.db.url, (c) => c.query(reset()))
      }
    })
  }

  it('still shows the role ALTER ROLE … SET role puts in place, and the search_path the session set', async () => {
    const reader = `reader_${ROLE}`
    await withClient(s.db.url, (c) => c.query(`create role ${reader}; grant ${reader} to ${ROLE}; grant all on orders to ${reader}; grant create on schema public to ${reader}; alter role ${ROLE} in database ${db()} set role = ${reader}`))
    try {
      const raw = await s.t.raw()
      raw.send(query('set search_path = public'))
      expect(await errorsUntilReady(raw)).toEqual([])
      const id = await heldOnWire(raw, query('create index orders_by_role on orders (id)'))
      const request = (await readRequest(s.bucket, id))!
      expect(request.settings?.role).toBe(reader)
      expect(request.settings?.search_path).toBe('public')
      await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'deny', reason: 'x'})
      expect((await errorsUntilReady(raw)).join('; ')).toMatch(/denied/)
      raw.end()
    } finally {
      await withClient(s.db.url, (c) => c.query(`alter role ${ROLE} in database ${db()} reset all`))
    }
  })
})
