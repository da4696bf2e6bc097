import {mkdtemp, readFile, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {pgEnv, run} from '../helpers/run.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import type {StatementEvent} from '../../src/proxy/seam.js'

describe('real clients through the tunnel', () => {
  let db: UpstreamInfo
  let t: TestTunnel
  let env: NodeJS.ProcessEnv
  let dir: string
  const events: StatementEvent[] = []
  beforeAll(async () => {
    db = await createTestDatabase()
    t = await startTunnel(db, {onStatement: (e) => events.push(e)})
    env = pgEnv(t.port, t.secret, db.database)
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-psql-'))
  })
  afterAll(() => t.close())

  it('psql runs a script with errors, reporting each and carrying on', async () => {
    const script = path.join(dir, 'script.sql')
    await writeFile(
      script,
      ['create table notes (id int primary key, body text);', "insert into notes values (1, 'first');", "insert into notes values (1, 'duplicate');", 'select * from missing_table;', "insert into notes values (2, 'second');", 'select id, body from notes order by id;'].join('\n'),
    )
    const r = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=0', '-A', '-t', '-f', script], {env})
    expect(r.code).toBe(0)
    expect(r.stderr).toMatch(/duplicate key value violates unique constraint "notes_pkey"/)
    expect(r.stderr).toMatch(/relation "missing_table" does not exist/)
    expect(r.stdout.trim().split('\n').slice(-2)).toEqual(['1|first', '2|second'])
  })

  it('psql stops at the first error with ON_ERROR_STOP and exits non-zero', async () => {
    const r = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-c', 'select 1/0'], {env})
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/division by zero/)
  })

  it('psql \\copy moves data in and out', async () => {
    const csvIn = path.join(dir, 'in.csv')
    const csvOut = path.join(dir, 'out.csv')
    await writeFile(csvIn, '10,ten\n11,eleven\n12,"with, comma"\n')
    const r = await run('psql', ['-X', '-v', 'ON_ERROR_STOP=1', '-c', 'create table people (id int, name text)', '-c', `\\copy people from '${csvIn}' csv`, '-c', `\\copy (select * from people order by id) to '${csvOut}' csv`], {env})
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/COPY 3/)
    expect(await readFile(csvOut, 'utf8')).toBe('10,ten\n11,eleven\n12,"with, comma"\n')
    const copies = events.filter((e) => /^copy /i.test(e.sql))
    expect(copies.map((e) => e.rows)).toEqual([3, 3])
  })

  it('psql shows server notices and the transaction state in its prompt', async () => {
    const r = await run('psql', ['-X', '-q'], {env, input: "\\set PROMPT1 '[%x]> '\nbegin;\ndo $$ begin raise notice 'inside'; end $$;\nselect 1/0;\nselect 1;\nrollback;\n\\echo done\n"})
    expect(r.stderr).toMatch(/NOTICE: {2}inside/)
    expect(r.stderr).toMatch(/current transaction is aborted/)
    expect(r.stdout).toMatch(/done/)
  })

  it('pgbench initialises (COPY) and runs with the simple and prepared protocols', async () => {
    const init = await run('pgbench', ['-i', '-s', '1', '-q'], {env, timeoutMs: 120_000})
    expect(init.stderr).toMatch(/done in/)
    expect(init.code).toBe(0)
    for (const mode of ['simple', 'prepared', 'extended']) {
      const r = await run('pgbench', ['-n', '-S', '-M', mode, '-c', '4', '-j', '2', '-t', '100'], {env, timeoutMs: 120_000})
      expect(r.stderr).not.toMatch(/error|abort/i)
      expect(r.code).toBe(0)
      expect(r.stdout).toMatch(/number of transactions actually processed: 400\/400/)
      expect(r.stdout).toMatch(/number of failed transactions: 0/)
    }
    const r = await run('pgbench', ['-n', '-M', 'prepared', '-c', '4', '-j', '2', '-t', '50'], {env, timeoutMs: 120_000})
    expect(r.stdout).toMatch(/number of transactions actually processed: 200\/200/)
    const hist = await withClient(db.url, (c) => c.query('select count(*)::int n from pgbench_history'))
    expect(hist.rows[0].n).toBe(200)
  })
})
