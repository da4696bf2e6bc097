/**
 * `dbgate connect <target> -- <command>` gives the command the tunnel through libpq's variables
 * (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE), on top of the person's own
 * environment. libpq reads other variables that decide where it connects, and some of them win over
 * those: a service (PGSERVICE, from PGSERVICEFILE or the system's pg_service.conf) is read before the
 * environment, so its host, port, database and user replaced the tunnel's, and PGHOSTADDR is dialled
 * in place of PGHOST. A person with a service for the database in their shell ran
 * `dbgate connect prod -- psql` and psql went to the database itself: no policy, no masking, no
 * recording, and nothing said so. Run with the real CLI and the real psql.
 */
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {clientEnvironment} from '../../src/connect/run-client.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'

const BIN = path.resolve('bin/run.js')

describe('the environment of the command run after --', () => {
  let db: UpstreamInfo
  let dir: string
  let env: NodeJS.ProcessEnv
  beforeAll(async () => {
    db = await createTestDatabase('clientenv')
    await withClient(db.url, (c) => c.query("create table customers (id int, email text); insert into customers values (1, 'alice.secret@example.com')"))
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-clientenv-'))
    await writeFile(
      path.join(dir, 'dbgate.yaml'),
      `targets:\n  app:\n    host: ${db.host}\n    port: ${db.port}\n    database: ${db.database}\n    user: ${db.user}\n    password: env:APP_DB_PASSWORD\n    tls: disable\n`,
    )
    // The person's own way to the database, with its credentials (as a service file often holds them).
    const service = `[direct]\nhost=${db.host}\nport=${db.port}\ndbname=${db.database}\nuser=${db.user}\npassword=${db.password}\nsslmode=disable\n`
    await writeFile(path.join(dir, 'pg_service.conf'), service)
    await writeFile(path.join(dir, 'services.conf'), service)
    env = {
      ...process.env,
      APP_DB_PASSWORD: db.password,
      DBGATE_CONFIG: '',
      XDG_CONFIG_HOME: path.join(dir, 'xdg'),
      XDG_DATA_HOME: path.join(dir, 'data'),
      XDG_STATE_HOME: path.join(dir, 'state'),
      NO_COLOR: '1',
      PGSERVICE: undefined,
      PGSERVICEFILE: undefined,
      PGSYSCONFDIR: undefined,
      PGHOSTADDR: undefined,
    }
  }, 60_000)
  afterAll(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  /** psql run through the tunnel with `extra` in the person's environment: what it printed. */
  async function psql(extra: NodeJS.ProcessEnv): Promise<string> {
    const sql = "select current_setting('application_name') like 'dbgate%' as via_tunnel, email from customers"
    const r = await run('node', [BIN, 'connect', 'app', '--config', path.join(dir, 'dbgate.yaml'), '--', 'psql', '-X', '-At', '-c', sql], {env: {...env, ...extra}, cwd: dir})
    expect(r.stderr).not.toMatch(/error/i)
    expect(r.code).toBe(0)
    return r.stdout.trim()
  }

  const CASES: [string, NodeJS.ProcessEnv][] = [
    ['PGSERVICE with PGSERVICEFILE', {PGSERVICE: 'direct', PGSERVICEFILE: 'services.conf'}],
    ['PGSERVICE with the pg_service.conf of PGSYSCONFDIR', {PGSERVICE: 'direct', PGSYSCONFDIR: '.'}],
  ]
  for (const [what, extra] of CASES) {
    it(`goes through the tunnel whatever the person's environment says: ${what}`, async () => {
      const out = await psql(extra)
      // Directly, psql reads the e-mail address in clear, and no session is recorded.
      expect(out).not.toContain('alice.secret@example.com')
      expect(out.split('|')[0], out).toBe('t')
    })
  }

  it('keeps the settings a person sets for their client, and drops what decides another endpoint', () => {
    const parent = {PATH: '/bin', HOME: '/home/a', PGSERVICE: 'direct', PGSERVICEFILE: '/x', PGHOSTADDR: '10.0.0.5', PGPASSFILE: '/p', PGAPPNAME: 'mine', PGTZ: 'UTC', PGCONNECT_TIMEOUT: '5', PGOPTIONS: '-c x=1', PGDATESTYLE: 'ISO', PGCLIENTENCODING: 'UTF8'}
    const got = clientEnvironment(parent, {PGHOST: '127.0.0.1', PGPORT: '6432', PGUSER: 'u', PGPASSWORD: 's', PGDATABASE: 'd', PGSSLMODE: 'disable', DATABASE_URL: 'postgresql://…'}, {})
    expect(Object.keys(got).filter((k) => k.startsWith('PG')).sort()).toEqual(['PGAPPNAME', 'PGCLIENTENCODING', 'PGCONNECT_TIMEOUT', 'PGDATABASE', 'PGDATESTYLE', 'PGHOST', 'PGOPTIONS', 'PGPASSWORD', 'PGPORT', 'PGSSLMODE', 'PGTZ', 'PGUSER'])
    expect(got.PATH).toBe('/bin')
    expect(got.PGHOST).toBe('127.0.0.1')
  })
})
