/**
 * Where other people connect from. pg_stat_activity, and the statistics functions and views beside
 * it, show every session's client address (and its reverse-DNS name, certificate DN, Kerberos
 * principal): another person's address is not a fact of the server, so it is masked by category
 * (an IP address keeps its network) however it is read: a column, a function, a whole row, JSON,
 * a view, COPY. Run first directly against PostgreSQL to show the address is there, then through
 * the tunnel `dbgate connect` builds, with the policy pack `none`.
 */
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {analyzeText} from '../../src/masking/lineage.js'
import {flatten} from '../../src/masking/lineage-model.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {copyOut, maskingFixture, type MaskingFixture} from './fixture.js'

/** Each reads the client address of the other person's session, whose pid is $PID. */
const READS = [
  'select client_addr from pg_stat_activity where pid = $PID',
  'select client_addr::text as a from pg_stat_activity where pid = $PID',
  'select host(client_addr) as a from pg_catalog.pg_stat_activity where pid = $PID',
  'select a.* from pg_stat_activity a where a.pid = $PID',
  'select a from pg_stat_activity a where a.pid = $PID',
  'select row_to_json(a)::text as j from pg_stat_activity a where a.pid = $PID',
  "select json_build_object('addr', client_addr, 'who', usename) as j from pg_stat_activity where pid = $PID",
  'select (select client_addr from pg_stat_activity where pid = $PID) as a',
  'with s as (select client_addr as c from pg_stat_activity) select c::text from s limit 50',
  'select pg_stat_get_backend_client_addr(b)::text as a from pg_stat_get_backend_idset() b',
  'select (pg_stat_get_activity($PID)).client_addr::text as a',
  'select client_addr::text as a from pg_stat_replication union all select client_addr::text from pg_stat_activity',
  'select string_agg(client_addr::text, \',\') as a from pg_stat_activity',
]

describe('masking: other sessions in the system views', () => {
  let fx: MaskingFixture
  let tunnel: PipelineTunnel
  let other: pg.Client
  let otherPid: number

  beforeAll(async () => {
    fx = await maskingFixture()
    tunnel = await openPipelineTunnel(fx.db, 'policy: none')
    other = new pg.Client({connectionString: fx.db.url})
    await other.connect()
    otherPid = (await other.query('select pg_backend_pid() as p')).rows[0].p as number
  })

  afterAll(async () => {
    await other?.end().catch(() => {})
    await tunnel?.close()
    await fx?.close()
  })

  it('shows the other session its address directly', async () => {
    const direct = new pg.Client({connectionString: fx.db.url})
    await direct.connect()
    try {
      const r = await direct.query(`select client_addr::text as a from pg_stat_activity where pid = ${otherPid}`)
      expect(r.rows[0].a).toBe('127.0.0.1/32')
    } finally {
      await direct.end()
    }
  })

  it.each(READS)('never shows another session its address through the tunnel: %s', async (template) => {
    const sql = template.replace(/\$PID/g, String(otherPid))
    const c = await tunnel.client()
    try {
      const r = await c.query(sql)
      expect(r.rows.length).toBeGreaterThan(0)
      expect(JSON.stringify(r.rows)).not.toMatch(/127\.0\.0\.1/)
      if (!/^with|union/.test(sql)) {
        const copied = await copyOut(c, `copy (${sql}) to stdout`)
        expect(copied.toString('utf8')).not.toMatch(/127\.0\.0\.1/)
      }
    } finally {
      await c.end()
    }
  })

  it('keeps the network of the address, and what is not personal, in clear', async () => {
    const c = await tunnel.client()
    try {
      const r = await c.query(`select pid, usename, client_addr as a, client_port > 0 as port, backend_type from pg_stat_activity where pid = ${otherPid}`)
      expect(r.rows).toEqual([{pid: otherPid, usename: fx.db.user, a: '127.0.0.0', port: true, backend_type: 'client backend'}])
      // The session's own address is its own.
      const own = await c.query('select inet_client_addr()::text as a')
      expect(own.rows[0].a).toBe('127.0.0.1/32')
    } finally {
      await c.end()
    }
  })

  // The test server has no TLS, GSSAPI or standby: these columns are NULL there, so what lineage
  // says of them is checked instead.
  it.each([
    ['select client_dn, client_serial, issuer_dn from pg_stat_ssl', ['untraceable', 'untraceable', 'untraceable']],
    ['select principal from pg_catalog.pg_stat_gssapi', ['untraceable']],
    ['select client_addr, client_hostname, application_name from pg_stat_replication', ['ip_address', 'untraceable', 'untraceable']],
    ['select sender_host, conninfo from pg_stat_wal_receiver', ['untraceable', 'secret']],
    ['select client_hostname from pg_stat_activity', ['untraceable']],
    ['select pid, ssl, version, cipher, bits from pg_stat_ssl', [undefined, undefined, undefined, undefined, undefined]],
    ['select pid, sent_lsn, state from pg_stat_replication', [undefined, undefined, undefined]],
  ])('masks what names a person in %s', (sql, expected) => {
    const r = analyzeText(sql, fx.catalog)
    if (!r.ok) throw new Error('does not parse')
    const columns = r.statements[0]!.columns ?? []
    expect(columns.map((col) => flatten(col)[0]?.category)).toEqual(expected)
  })
})
