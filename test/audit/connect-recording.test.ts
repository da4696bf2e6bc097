import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {beforeAll, describe, expect, it} from 'vitest'
import {isolatedEnv} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'

const BIN = path.resolve('bin/run.js')

/** What an auditor sees after an engineer used `dbgate connect`: the real CLI on both sides. */
describe('sessions recorded by dbgate connect', () => {
  let db: UpstreamInfo
  let env: NodeJS.ProcessEnv
  beforeAll(async () => {
    db = await createTestDatabase()
    await withClient(db.url, (c) => c.query("create table orders (id int primary key, status text, customer_email text); insert into orders values (1, 'new', 'first.buyer@example.org'), (2, 'paid', 'second.buyer@example.org')"))
    env = {...isolatedEnv(), APP_DB_PASSWORD: db.password, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: ''}
    const configPath = path.join(env.HOME!, 'dbgate.yaml')
    await writeFile(configPath, `targets:\n  app:\n    host: ${db.host}\n    port: ${db.port}\n    database: ${db.database}\n    user: ${db.user}\n    password: env:APP_DB_PASSWORD\n    tls: disable\n`)
    env.DBGATE_CONFIG = configPath
  })

  it('records every statement, ships it to the bucket on exit, and it verifies', async () => {
    const script = "select status, customer_email from orders where id = 2;\ndelete from orders;\nselect * from missing_table;\n"
    const r = await run('node', [BIN, 'connect', 'app', '--', 'psql', '-X', '-v', 'ON_ERROR_STOP=0'], {env, input: script})
    expect(r.stdout, r.stderr).toMatch(/paid/)
    expect(r.stderr).toMatch(/denied by rule default\.no-unfiltered-write|denied by rule default\./)

    const list = await run('node', [BIN, 'sessions', 'list', '--json'], {env})
    expect(list.code).toBe(0)
    const {sessions} = JSON.parse(list.stdout) as {sessions: {id?: string; sessionId?: string; target: string; status: string; totals: {statements: number; denied: number; errors: number}}[]}
    expect(sessions).toHaveLength(1)
    expect(sessions[0]).toMatchObject({target: 'app', status: 'ended'})
    expect(sessions[0]!.totals).toMatchObject({denied: 1, errors: 1})

    const search = await run('node', [BIN, 'sessions', 'search', 'delete from orders'], {env})
    expect(search.code).toBe(0)
    expect(search.stdout).toMatch(/delete from orders/i)

    const show = await run('node', [BIN, 'sessions', 'show', (sessions[0] as {sessionId: string}).sessionId], {env})
    expect(show.stdout).toMatch(/paid/)
    expect(show.stdout).toMatch(/s\*\*\*@example\.org/)
    expect(show.stdout).not.toMatch(/second\.buyer/)

    const verify = await run('node', [BIN, 'sessions', 'verify', '--all'], {env})
    expect(verify.stderr + verify.stdout).not.toMatch(/UNKNOWN_KEY|problem/i)
    expect(verify.code).toBe(0)
  })
})
