import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {connect, streamQuery, terminate} from '../../src/bench/client.js'
import {findPgBouncer, startPgBouncer, type PgBouncer} from '../../src/bench/pgbouncer.js'
import {createTestDatabase} from '../helpers/pg.js'
import {run} from '../helpers/run.js'

// The benchmark's "pgbouncer (session, TLS)" path: the one PgBouncer setup, with clients on TLS.
let bouncer: PgBouncer

beforeAll(async () => {
  const exe = await findPgBouncer()
  if (!exe) throw new Error('pgbouncer is not installed: install the Debian package pgbouncer (.ci/run does)')
  const db = await createTestDatabase('bench_tls')
  bouncer = await startPgBouncer(exe, db, {maxClients: 10, clientTls: true})
})
afterAll(async () => {
  await bouncer?.stop()
})

describe('PgBouncer with client TLS (bench path pgbouncer-tls)', () => {
  it('gives an endpoint that asks for sslmode=require', () => {
    expect(bouncer.endpoint).toMatchObject({host: '127.0.0.1', sslmode: 'require'})
  })

  it('pgbench-style clients get in with sslmode=require, and psql reports TLS', async () => {
    const ep = bouncer.endpoint
    const env = {PGHOST: ep.host, PGPORT: String(ep.port), PGUSER: ep.user, PGPASSWORD: ep.password, PGDATABASE: ep.database, PGCONNECT_TIMEOUT: '10'}
    const tls = await run('psql', ['-XAtc', 'select 1'], {env: {...env, PGSSLMODE: 'require'}})
    expect(tls).toMatchObject({code: 0, stdout: '1\n'})
    const info = await run('psql', ['-X', '-c', '\\conninfo'], {env: {...env, PGSSLMODE: 'require'}})
    expect(info.stdout).toMatch(/SSL connection \(protocol: TLSv1\.[23]/)
  })

  it('refuses a client without TLS', async () => {
    const ep = bouncer.endpoint
    const plain = await run('psql', ['-XAtc', 'select 1'], {env: {PGHOST: ep.host, PGPORT: String(ep.port), PGUSER: ep.user, PGPASSWORD: ep.password, PGDATABASE: ep.database, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10'}})
    expect(plain.code).not.toBe(0)
    expect(plain.stderr).toMatch(/SSL required/i)
  })

  it("the benchmark's own client streams a result over it", async () => {
    const session = await connect(bouncer.endpoint)
    try {
      expect(session.encrypted).toBe(true)
      const r = await streamQuery(session, 'select g from generate_series(1, 1000) g')
      expect(r.rows).toBe(1000)
    } finally {
      await terminate(session)
    }
  })
})
