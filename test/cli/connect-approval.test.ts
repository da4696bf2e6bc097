/**
 * `dbgate connect <target> -- psql` holding a statement for approval: psql and the tunnel share one
 * terminal, and the person is told once, by psql's NOTICE, not again by a tunnel warning.
 */
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, expect, it} from 'vitest'
import {fixture, loginAs, type Fixture} from '../identity/helpers.js'
import {targetConfigText} from '../helpers/open.js'
import {createTestDatabase} from '../helpers/pg.js'
import {run} from '../helpers/run.js'

const BIN = path.resolve('bin/run.js')
let f: Fixture
let bucket: string
let config: string

beforeAll(async () => {
  f = await fixture()
  await loginAs(f, {user: 'alice'})
  const db = await createTestDatabase()
  bucket = await mkdtemp(path.join(tmpdir(), 'dbgate-held-bucket-'))
  config = path.join(f.dir, 'dbgate.yaml')
  await writeFile(
    config,
    [
      `identity: {issuer: '${f.dev.issuer}', clientId: ${f.dev.cliClientId}}`,
      `bucket: file://${bucket}`,
      'targets:',
      // Nobody decides: the request expires quickly, which is all this test needs.
      ...targetConfigText('app', db, 'allow: [engineering]\nreviewers: [dba]\napprovals: {expiry: 2s}', 'APP_DB_PASSWORD'),
      '',
    ].join('\n'),
  )
  process.env.APP_DB_PASSWORD_FOR_TEST = db.password
})
afterAll(async () => {
  await f.close()
  await rm(bucket, {recursive: true, force: true})
})

it('announces a held statement once, through the client', async () => {
  const r = await run('node', [BIN, 'connect', 'app', '--config', config, '--', 'psql', '-X', '-c', 'create table held_once (id int)'], {
    env: {...f.env, APP_DB_PASSWORD: process.env.APP_DB_PASSWORD_FOR_TEST, DBGATE_CONFIG: undefined, PGPASSWORD: undefined, PGHOST: undefined, PGPORT: undefined},
  })
  // psql's own NOTICE and ERROR tell the story.
  expect(r.stderr).toMatch(/NOTICE: {2}dbgate: waiting for approval apr-\w+ by a member of dba/)
  expect(r.stderr).toMatch(/ERROR: .*expired/)
  // The tunnel does not tell it again on the same terminal.
  expect(r.stderr).not.toMatch(/^dbgate: warning: .*(waiting for approval|expired with no decision)/m)
})
