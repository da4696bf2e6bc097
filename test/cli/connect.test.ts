import {spawn} from 'node:child_process'
import {chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {createInterface} from 'node:readline'
import pg from 'pg'
import {beforeAll, describe, expect, it} from 'vitest'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'

const BIN = path.resolve('bin/run.js')

/** The CLI as a user runs it: the built `dbgate` binary, a dbgate.yaml, a real database. */
describe('dbgate connect', () => {
  let db: UpstreamInfo
  let dir: string
  let env: NodeJS.ProcessEnv
  beforeAll(async () => {
    db = await createTestDatabase()
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-cli-'))
    await writeFile(
      path.join(dir, 'dbgate.yaml'),
      `targets:\n  app:\n    host: ${db.host}\n    port: ${db.port}\n    database: ${db.database}\n    user: ${db.user}\n    password: env:APP_DB_PASSWORD\n    tls: disable\n`,
    )
    env = {APP_DB_PASSWORD: db.password, DBGATE_CONFIG: '', XDG_CONFIG_HOME: path.join(dir, 'xdg'), XDG_STATE_HOME: path.join(dir, 'state'), PGPASSWORD: '', PGHOST: '', PGPORT: ''}
    // The file takes the password from the person's environment: used from the current directory, it is trusted first.
    expect((await run('node', [BIN, 'config', 'trust'], {cwd: dir, env})).code).toBe(0)
  })

  it('asks for ./dbgate.yaml to be trusted before the password from your environment goes to the host it names', async () => {
    const fresh = {...env, XDG_STATE_HOME: path.join(dir, 'state-of-someone-else')}
    const r = await run('node', [BIN, 'connect', 'app', '--', 'psql', '-X', '-At', '-c', 'select 1'], {cwd: dir, env: fresh})
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`./dbgate.yaml was found in the current directory and you have not trusted it: it names a target, app, at ${db.host}:${db.port}, that would receive your password from env:APP_DB_PASSWORD. Nothing was sent.`)
    expect(r.stderr).toContain('run `dbgate config trust`')
    expect(r.stdout).toBe('')
  })

  it('runs a command through the tunnel and exits with its exit code', async () => {
    const r = await run('node', [BIN, 'connect', 'app', '--', 'psql', '-X', '-At', '-c', 'select current_database()'], {cwd: dir, env})
    expect(r.stderr).toBe('')
    expect(r.stdout.trim()).toBe(db.database)
    expect(r.code).toBe(0)
    const failing = await run('node', [BIN, 'connect', 'app', '--', 'sh', '-c', 'psql -X -Atc "select 1/0"; exit 7'], {cwd: dir, env})
    expect(failing.stderr).toMatch(/division by zero/)
    expect(failing.code).toBe(7)
  })

  it('sets PG* variables and DATABASE_URL for the command, with the tunnel secret as password', async () => {
    const r = await run('node', [BIN, 'connect', 'app', '--', 'sh', '-c', 'echo "$PGHOST $PGPORT $PGDATABASE $DATABASE_URL"; test "$PGPASSWORD" != "$APP_DB_PASSWORD"'], {cwd: dir, env})
    expect(r.code).toBe(0)
    const [host, port, database, url] = r.stdout.trim().split(' ')
    expect(host).toBe('127.0.0.1')
    expect(Number(port)).toBeGreaterThan(0)
    expect(database).toBe(db.database)
    expect(url).toMatch(new RegExp(`^postgresql://${db.user}:[^@]+@127\\.0\\.0\\.1:${port}/${db.database}$`))
  })

  it("hands the command after -- none of the credentials dbgate reads: the targets' password variables, DBGATE_TOKEN, DBGATE_CLIENT_SECRET", async () => {
    // A second target whose password is a variable too: the command gets neither, so it cannot reach a database around the tunnel.
    const config = path.join(dir, 'two-targets.yaml')
    await writeFile(
      config,
      [
        'targets:',
        '  app:',
        `    host: ${db.host}`,
        `    port: ${db.port}`,
        `    database: ${db.database}`,
        `    user: ${db.user}`,
        '    password: env:APP_DB_PASSWORD',
        '    tls: disable',
        '  other:',
        '    host: 127.0.0.1',
        '    database: other',
        '    user: other',
        '    password: env:OTHER_DB_PASSWORD',
        '',
      ].join('\n'),
    )
    const secrets = {OTHER_DB_PASSWORD: 'other-target-password-7c1', DBGATE_TOKEN: 'a.person.token-9a8', DBGATE_CLIENT_ID: 'ci-bot', DBGATE_CLIENT_SECRET: 'ci-bot-secret-3e4'}
    for (const script of ['env', 'printenv APP_DB_PASSWORD OTHER_DB_PASSWORD DBGATE_TOKEN DBGATE_CLIENT_SECRET', 'cat /proc/self/environ | tr "\\0" "\\n"']) {
      const r = await run('node', [BIN, 'connect', 'app', '--config', config, '--', 'sh', '-c', `${script}; psql -X -Atc "select 1"`], {cwd: dir, env: {...env, ...secrets}})
      expect(r.code, r.stderr).toBe(0)
      for (const value of [db.password, secrets.OTHER_DB_PASSWORD, secrets.DBGATE_TOKEN, secrets.DBGATE_CLIENT_SECRET]) {
        expect(r.stdout, `${script}: a credential reached the command`).not.toContain(value)
      }
      // The tunnel's own secret is what the command signs in with.
      expect(r.stdout.trim().split('\n').at(-1)).toBe('1')
    }
  })

  it('prints one JSON line when ready, serves clients, and closes cleanly on Ctrl-C', async () => {
    const child = spawn('node', [BIN, 'connect', 'app', '--json'], {cwd: dir, env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const line = await new Promise<string>((resolve) => createInterface({input: child.stdout}).once('line', resolve))
    const info = JSON.parse(line) as {url: string; host: string; port: number; user: string; database: string; password: string}
    expect(Object.keys(info)).toEqual(expect.arrayContaining(['url', 'host', 'port', 'user', 'database', 'password']))
    expect(info.password).not.toBe(db.password)
    const c = new pg.Client({connectionString: info.url})
    await c.connect()
    expect((await c.query('select 1 as one')).rows).toEqual([{one: 1}])
    await c.end()
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
    child.kill('SIGINT')
    expect(await exited).toBe(0)
    expect(stderr).toMatch(/closing the tunnel/)
    const after = new pg.Client({connectionString: info.url})
    await expect(after.connect()).rejects.toMatchObject({code: 'ECONNREFUSED'})
  })

  it("prints a psql line that keeps the tunnel's secret out of psql's arguments, which every local user can read with ps", async () => {
    const child = spawn('node', [BIN, 'connect', 'app'], {cwd: dir, env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
    try {
      const lines: string[] = []
      const rl = createInterface({input: child.stdout})
      const psqlLine = await new Promise<string>((resolve) =>
        rl.on('line', (l) => {
          lines.push(l)
          if (l.trim().startsWith('psql:')) resolve(l.trim().slice('psql:'.length).trim())
        }),
      )
      const url = lines.find((l) => l.trim().startsWith('URI:'))!.trim().slice('URI:'.length).trim()
      const secret = decodeURIComponent(new URL(url).password)
      expect(secret.length).toBeGreaterThan(20)
      // psql as the person runs it from the line, through a shell; what it was given as arguments is what ps shows.
      const shim = await mkdtemp(path.join(tmpdir(), 'dbgate-psql-'))
      const argvFile = path.join(shim, 'argv')
      await writeFile(path.join(shim, 'psql'), `#!/bin/sh\nprintf '%s\\n' "$@" > '${argvFile}'\nexec /usr/bin/env -S PATH="${process.env.PATH}" psql "$@"\n`, {mode: 0o755})
      for (const shell of ['sh', 'bash']) {
        const r = await run(shell, ['-c', `${psqlLine} -X -Atc 'select 42'`], {env: {...env, PATH: `${shim}:${process.env.PATH}`}})
        expect(r.stdout.trim(), r.stderr).toBe('42')
        const argv = await readFile(argvFile, 'utf8')
        expect(argv).toContain('127.0.0.1')
        expect(argv, `${shell}: the secret is in psql's arguments`).not.toContain(secret)
        expect(argv).not.toContain(encodeURIComponent(secret))
      }
    } finally {
      child.kill('SIGINT')
    }
  })

  it('listens on a unix socket only in a directory no one else can change, and says why it refuses one', async () => {
    // Whoever may write the directory can put a socket of their own in the tunnel's place, and the person's clients talk to it.
    const base = await mkdtemp(path.join(tmpdir(), 'dbgate-sockdirs-'))
    await chmod(base, 0o755)
    const dirs: [string, number, boolean][] = [
      ['world-writable', 0o777, false],
      ['group-writable', 0o770, false],
      ['private', 0o700, true],
      ['sticky', 0o1777, true],
    ]
    for (const [name, mode, ok] of dirs) {
      const d = path.join(base, name)
      await mkdir(d)
      await chmod(d, mode)
      const r = await run('node', [BIN, 'connect', 'app', '--socket', d, '--', 'psql', '-X', '-Atc', 'select 7'], {cwd: dir, env})
      if (ok) {
        expect(r.stdout.trim(), `${name}: ${r.stderr}`).toBe('7')
        continue
      }
      expect(r.code, name).toBe(2)
      expect(r.stdout).toBe('')
      expect(r.stderr).toContain(`refusing to listen on a unix socket in ${d}: other users may write to it`)
      expect(r.stderr).toContain('--socket')
    }
    // A directory of another user's, or under one: they may replace it whole.
    if (process.getuid?.() === 0) {
      const theirs = path.join(base, 'theirs')
      await mkdir(path.join(theirs, 'mine'), {recursive: true})
      await chmod(theirs, 0o755)
      await chmod(path.join(theirs, 'mine'), 0o700)
      await chown(theirs, 65534, 65534)
      for (const d of [theirs, path.join(theirs, 'mine')]) {
        const r = await run('node', [BIN, 'connect', 'app', '--socket', d, '--', 'psql', '-X', '-Atc', 'select 7'], {cwd: dir, env})
        expect(r.code, d).toBe(2)
        expect(r.stderr).toContain(`refusing to listen on a unix socket in ${d}: ${theirs} belongs to another user`)
      }
    }
    await rm(base, {recursive: true, force: true})
  })

  it('explains config mistakes with file, line and key, and exits 2', async () => {
    const bad = path.join(dir, 'bad.yaml')
    await writeFile(bad, 'targets:\n  app:\n    host: db\n    prot: 5432\n    database: app\n    user: u\n')
    const r = await run('node', [BIN, 'connect', 'app', '--config', bad], {cwd: dir, env})
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/bad\.yaml:4:5/)
    expect(r.stderr).toMatch(/targets\.app/)
    expect(r.stderr).toMatch(/did you mean "port"/)
  })

  it('names the missing environment variable behind a password source', async () => {
    const r = await run('node', [BIN, 'connect', 'app', '--', 'true'], {cwd: dir, env: {...env, APP_DB_PASSWORD: undefined}})
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/APP_DB_PASSWORD/)
    expect(r.stderr).not.toContain(db.password)
  })

  it('refuses a non-loopback listen address unless forced', async () => {
    const r = await run('node', [BIN, 'connect', 'app', '--listen', '0.0.0.0', '--', 'true'], {cwd: dir, env})
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/loopback only/)
    expect(r.stderr).toMatch(/--force-listen/)
  })

  it('answers --help and --version', async () => {
    const help = await run('node', [BIN, '--help'], {cwd: dir, env})
    expect(help.stdout).toMatch(/connect\s+Open a local tunnel/)
    const version = await run('node', [BIN, '--version'], {cwd: dir, env})
    expect(version.stdout).toMatch(/^dbgate\/\d+\.\d+\.\d+/)
  })
})
