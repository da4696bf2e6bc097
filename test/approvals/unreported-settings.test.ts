/**
 * What a held statement means depends on session state the server never reports: a custom setting
 * (`app.tenant`) that RLS policies, views and functions read with current_setting() (no
 * ParameterStatus, hidden from SHOW ALL and pg_settings), the role SET ROLE put in place (only
 * is_superuser is reported), and the types a Parse declared for its parameters (`$1` declared int4
 * or text picks another overload, operator or domain CHECK). A reviewer read `session settings:
 * DateStyle … · search_path …` and `[$1 = '5']`, and approved a statement that ran as another
 * tenant, as another role, with other types. The request now carries what the server answers to
 * queries of the tunnel's own in that session, however the setting was placed (SET long ago, SET
 * LOCAL, set_config, the startup packet, ALTER ROLE … IN DATABASE … SET), and a setting that moved
 * while the statement waited voids the approval. Real tunnel, real IdP, real PostgreSQL, a raw wire client.
 */
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decide} from '../../src/approvals/review.js'
import {readRequest} from '../../src/approvals/store.js'
import {adminUrl, withClient} from '../helpers/pg.js'
import {waitFor} from '../helpers/wait.js'
import {RawClient} from '../helpers/raw-client.js'
import {approvalSetting, errorsUntilReady, heldOnWire, shownToReviewer, type ApprovalSetting} from './helpers.js'

const target = (webhook: string) => ['allow: [engineering]', 'reviewers: [dba]', 'approvals:', '  expiry: 15m', '  windows: true', `  webhook: ${webhook}`, 'rules:', '  - id: role-switch', '    match: {class: privilege, settings: [role]}', '    action: allow', '  - id: tenant-writes', '    match: {class: write, tables: [public.tenant_rows]}', '    action: require_approval'].join('\n')

const {query, parse, bind, execute, sync, describe: describeMsg} = serialize

describe('session state a held statement runs under that the server does not report', () => {
  let s: ApprovalSetting
  let hook: http.Server
  const posts: string[] = []
  beforeAll(async () => {
    hook = http.createServer((req, res) => {
      let body = ''
      req.on('data', (d: Buffer) => (body += d.toString()))
      req.on('end', () => {
        posts.push((JSON.parse(body) as {text: string}).text)
        res.end('ok')
      })
    })
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r))
    const webhook = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`
    s = await approvalSetting({database: 'unreported_settings', target: target(webhook), requester: 'alice', others: ['bob']})
    await withClient(s.db.url, async (c) => {
      await c.query('create table orders (id int, tenant text)')
      await c.query("insert into orders values (1, '7'), (2, '9')")
      await c.query('create role auditor_r5')
      await c.query('grant all on orders to auditor_r5')
      await c.query(`grant auditor_r5 to ${s.db.user}`)
      await c.query('grant create on schema public to auditor_r5')
      await c.query(`alter role ${s.db.user} in database ${s.db.database} set app.region = 'eu-1'`)
      // A tenant from the server's configuration, read by an RLS policy: no statement names the setting.
      await c.query("create table tenant_rows (id int, tenant text, note text); insert into tenant_rows values (1, '7', 'a'), (2, '9', 'b')")
      await c.query('create role tenant_app_r5')
      await c.query('grant all on tenant_rows to tenant_app_r5')
      await c.query(`grant tenant_app_r5 to ${s.db.user}`)
      await c.query('alter table tenant_rows enable row level security')
      await c.query("create policy by_tenant on tenant_rows using (tenant = current_setting('app.r5tenant', true))")
      // A view and a default over the table a migration alters: reading the code's names must not wait behind it.
      await c.query("create table migrated (id int, tag text default current_setting('app.tag', true)); create view migrated_v as select * from migrated")
    })
  })
  afterAll(async () => {
    await withClient(s.db.url, (c) => c.query(`alter role ${s.db.user} in database ${s.db.database} reset all`)).catch(() => {})
    hook?.close()
    await s?.close()
  })

  const tables = (name: string) => withClient(s.db.url, async (c) => (await c.query('select count(*)::int as n from pg_tables where tablename = $1', [name])).rows[0].n as number)
  // The held text names no setting: what the session set is shown because the session set it.
  const copy = (name: string) => `create table ${name} as select * from orders`

  const routes: [string, string[], Record<string, string>][] = [
    ['SET, long before', ["set app.tenant = '7'", 'select 1', 'select 2', 'select 3', 'select 4', 'select 5', 'select 6'], {'app.tenant': '7'}],
    ['set_config', ["select set_config('app.tenant', '9', false)"], {'app.tenant': '9'}],
    ['SET LOCAL in the open transaction', ['begin', "set local app.tenant = '11'"], {'app.tenant': '11'}],
    ['SET ROLE', ['set role auditor_r5', "set app.tenant = '7'"], {'app.tenant': '7', role: 'auditor_r5'}],
    ['a PREPARE of set_config, executed', ["prepare pick_tenant as select set_config('app.tenant', $1, false)", "execute pick_tenant('13')"], {'app.tenant': '13'}],
    ['ALTER ROLE … IN DATABASE … SET', ["set app.tenant = '7'"], {'app.region': 'eu-1'}],
  ]
  let n = 0
  for (const [route, before, expected] of routes) {
    it(`shows the reviewer what the server holds, and runs as shown once approved (${route})`, async () => {
      const raw = await s.t.raw()
      for (const sql of before) {
        raw.send(query(sql))
        expect(await errorsUntilReady(raw), sql).toEqual([])
      }
      const name = `orders_t${n++}`
      const id = await heldOnWire(raw, query(copy(name)))
      const request = (await readRequest(s.bucket, id))!
      for (const [k, v] of Object.entries(expected)) {
        expect(request.settings?.[k], `${route}: ${k}`).toBe(v)
        for (const text of shownToReviewer(request)) expect(text, route).toContain(`${k} = ${v}`)
      }
      await waitFor(() => posts.some((x) => x.includes(id)), 'the webhook is told')
      const post = posts.find((x) => x.includes(id))!
      for (const [k, v] of Object.entries(expected)) expect(post, route).toMatch(new RegExp(`under the session settings \`[^\`]*${k} = ${v}`))
      await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'approve'})
      // The tunnel's queries left the session as it was: the statement runs, in its transaction.
      expect(await errorsUntilReady(raw)).toEqual([])
      if (before[0] === 'begin') {
        raw.send(query('commit'))
        expect(await errorsUntilReady(raw)).toEqual([])
      }
      raw.end()
      expect(await tables(name)).toBe(1)
    })
  }

  it('shows a custom setting that only an RLS policy names, from the server configuration', async () => {
    await withClient(adminUrl('postgres'), async (c) => {
      await c.query("alter system set app.r5tenant = '9'")
      await c.query('select pg_reload_conf()')
    })
    try {
      await waitFor(async () => (await withClient(s.db.url, (c) => c.query("select current_setting('app.r5tenant', true) as v"))).rows[0].v === '9', 'the reload applied')
      const raw = await s.t.raw()
      raw.send(query('set role tenant_app_r5'))
      expect(await errorsUntilReady(raw)).toEqual([])
      const id = await heldOnWire(raw, query("update tenant_rows set note = 'x'"))
      const request = (await readRequest(s.bucket, id))!
      expect(request.settings).toMatchObject({'app.r5tenant': '9', role: 'tenant_app_r5'})
      for (const text of shownToReviewer(request)) expect(text).toContain('app.r5tenant = 9')
      await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'approve'})
      expect(await errorsUntilReady(raw)).toEqual([])
      raw.end()
      // The tenant the reviewer read is the one whose rows changed.
      expect((await withClient(s.db.url, (c) => c.query('select id, note from tenant_rows order by id'))).rows).toEqual([{id: 1, note: 'a'}, {id: 2, note: 'x'}])
    } finally {
      await withClient(adminUrl('postgres'), async (c) => {
        await c.query('alter system reset app.r5tenant')
        await c.query('select pg_reload_conf()')
      })
    }
  })

  it("shows a value the session chose as one value: no terminal control acts, no separator passes for another setting", async () => {
    const raw = await s.t.raw()
    raw.send(query("set role auditor_r5; set app.note = 'x · role = postgres'; set app.mark = E'\\x1b[8mhidden'"))
    expect(await errorsUntilReady(raw)).toEqual([])
    const id = await heldOnWire(raw, query(copy('orders_values')))
    const request = (await readRequest(s.bucket, id))!
    for (const text of shownToReviewer(request)) {
      expect(text).toContain("app.note = 'x · role = postgres'")
      expect(text).toContain('role = auditor_r5')
      expect(text).not.toContain('\x1b')
      expect(text).toMatch(/app\.mark = \\x1b\[8mhidden/)
    }
    await waitFor(() => posts.some((x) => x.includes(id)), 'the webhook is told')
    expect(posts.find((x) => x.includes(id))).not.toContain('\x1b')
    await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'deny', reason: 'x'})
    expect((await errorsUntilReady(raw)).join('; ')).toMatch(/denied/)
    raw.end()
  })

  it('holds the next statement of a migration in a transaction that altered a table a view and a default read', async () => {
    const raw = await s.t.raw()
    raw.send(query('begin'))
    expect(await errorsUntilReady(raw)).toEqual([])
    const alter = await heldOnWire(raw, query('alter table migrated add column extra int'))
    await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id: alter, action: 'approve'})
    expect(await errorsUntilReady(raw)).toEqual([])
    // The transaction holds an ACCESS EXCLUSIVE lock on migrated until it ends.
    const id = await heldOnWire(raw, query('create index migrated_extra on migrated (extra)'))
    expect((await readRequest(s.bucket, id))!.sql).toContain('migrated_extra')
    await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'approve'})
    expect(await errorsUntilReady(raw)).toEqual([])
    raw.send(query('commit'))
    expect(await errorsUntilReady(raw)).toEqual([])
    raw.end()
    expect(await withClient(s.db.url, async (c) => (await c.query("select count(*)::int as n from pg_indexes where indexname = 'migrated_extra'")).rows[0].n)).toBe(1)
  })

  it('shows a setting from the startup packet', async () => {
    const raw = await RawClient.connect(s.t.info.port, {password: s.t.info.password, database: s.t.info.database, params: {'app.tenant': '9'}})
    try {
      const id = await heldOnWire(raw, query(copy('orders_startup')))
      expect((await readRequest(s.bucket, id))!.settings?.['app.tenant']).toBe('9')
      await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'deny', reason: 'x'})
      expect((await errorsUntilReady(raw)).join('; ')).toMatch(/denied/)
    } finally {
      raw.end()
    }
  })

  it('shows the settings and the declared parameter types of a statement held at its Bind, whose unnamed statement still runs', async () => {
    const raw = await s.t.raw()
    raw.send(query("set app.tenant = '7'"))
    expect(await errorsUntilReady(raw)).toEqual([])
    const text = "create table orders_bound as select * from orders where tenant = current_setting('app.tenant') and id::text = $1"
    const id = await heldOnWire(raw, parse({text, types: [25]}), bind({values: ['1']}), describeMsg({type: 'P'}), execute({}), sync())
    const request = (await readRequest(s.bucket, id))!
    expect(request.settings?.['app.tenant']).toBe('7')
    expect(request.paramTypes).toEqual(['text'])
    for (const text of shownToReviewer(request)) expect(text).toContain("$1 (declared text) = '1'")
    await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id, action: 'approve'})
    expect(await errorsUntilReady(raw)).toEqual([])
    raw.end()
    expect(await tables('orders_bound')).toBe(1)
  })

  for (const action of ['approve', 'window'] as const) {
    it(`voids the ${action === 'window' ? 'window' : 'approval'} when a setting moved while the statement waited (a configuration reload)`, async () => {
      const admin = adminUrl('postgres')
      const setting = `app.r5reload_${action}`
      await withClient(admin, async (c) => {
        await c.query(`alter system set ${setting} = 'a'`)
        await c.query('select pg_reload_conf()')
      })
      try {
        const raw = await s.t.raw()
        // The server applies a reload when a session next reads a command.
        raw.send(query('select 1'))
        await errorsUntilReady(raw)
        const table = `orders_reload_${action}`
        const id = await heldOnWire(raw, query(`create table ${table} as select * from orders where tenant = current_setting('${setting}')`))
        expect((await readRequest(s.bucket, id))!.settings?.[setting]).toBe('a')
        await withClient(admin, async (c) => {
          await c.query(`alter system set ${setting} = 'b'`)
          await c.query('select pg_reload_conf()')
        })
        // pg_reload_conf signals the postmaster, which signals every backend: wait until another session sees it.
        await waitFor(async () => (await withClient(s.db.url, (c) => c.query('select current_setting($1, true) as v', [setting]))).rows[0].v === 'b', 'the reload applied')
        await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, action === 'window' ? {id, action, windowMs: 600_000} : {id, action})
        expect((await errorsUntilReady(raw)).join('; ')).toMatch(/session's settings \(or its temporary relations\) changed while it waited/)
        expect(await tables(table)).toBe(0)
        // A window granted on it opened nothing: the next statement of its class asks again.
        if (action === 'window') {
          const again = await heldOnWire(raw, query(`create table ${table}_2 (id int)`))
          await decide({bucket: s.bucket, config: s.config, reviewer: await s.p.reviewer('bob')}, {id: again, action: 'deny', reason: 'x'})
          expect((await errorsUntilReady(raw)).join('; ')).toMatch(/denied/)
        }
        raw.end()
      } finally {
        await withClient(admin, async (c) => {
          await c.query(`alter system reset ${setting}`)
          await c.query('select pg_reload_conf()')
        })
      }
    })
  }
})
