import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {Errors} from '@oclif/core'
import {afterAll, afterEach, beforeAll, describe, expect, it, vi} from 'vitest'
import Targets from '../../src/commands/targets.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const ansi = /\u001B\[[0-9;]*m/g

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dbgate-targets-'))
})
afterAll(async () => {
  await rm(dir, {recursive: true, force: true})
})
afterEach(() => {
  vi.restoreAllMocks()
  process.exitCode = undefined
})

const config = `targets:
  prod:
    host: db.internal
    database: app
    user: app_rw
    password: env:PROD_DB_PASSWORD
    tls: verify-full
    allow: [engineering, dba]
  dev:
    host: localhost
    port: 15432
    database: app_dev
    user: dev
    password: "inline-Pa55word"
`

/** Runs the command in-process, capturing what it prints. */
async function run(args: string[]): Promise<{result: unknown; error: unknown; stdout: string; stderr: string}> {
  const out: string[] = []
  const err: string[] = []
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')))
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')))
  let result: unknown
  let error: unknown
  try {
    result = await Targets.run(args, root)
  } catch (e) {
    error = e
  }
  return {result, error, stdout: out.join('\n').replace(ansi, ''), stderr: err.join('\n').replace(ansi, '')}
}

async function configFile(name: string, text: string): Promise<string> {
  const file = join(dir, name)
  await writeFile(file, text)
  return file
}

describe('dbgate targets', () => {
  it('--json returns every target with its password source, never an inline password', async () => {
    const file = await configFile('ok.yaml', config)
    const {result, error, stdout} = await run(['--config', file, '--json'])
    expect(error).toBeUndefined()
    const expected = [
      {name: 'prod', host: 'db.internal', port: 5432, database: 'app', user: 'app_rw', tls: 'verify-full', passwordKind: 'env', passwordSource: 'env:PROD_DB_PASSWORD', allow: ['engineering', 'dba']},
      {name: 'dev', host: 'localhost', port: 15432, database: 'app_dev', user: 'dev', tls: 'prefer', passwordKind: 'inline', passwordSource: 'inline', allow: null},
    ]
    expect(result).toEqual(expected)
    expect(JSON.parse(stdout)).toEqual(expected)
    expect(stdout).not.toContain('inline-Pa55word')
  })

  it('prints tab-separated rows when piped, and the inline-password warning on stderr', async () => {
    const file = await configFile('ok.yaml', config)
    const {error, stdout, stderr} = await run(['--config', file])
    expect(error).toBeUndefined()
    expect(stdout).toBe(['prod\tdb.internal:5432\tapp\tapp_rw\tverify-full\tenv:PROD_DB_PASSWORD\tengineering,dba', 'dev\tlocalhost:15432\tapp_dev\tdev\tprefer\tinline\tany'].join('\n'))
    expect(stderr).toBe(`${file}:14:15 targets.dev.password: warning: secret written in plain text in the config file — fix: move it out of the file and write env:VAR, file:/path or keychain:NAME instead`)
    expect(stdout + stderr).not.toContain('inline-Pa55word')
  })

  it('prints an aligned table with a header on a terminal', async () => {
    const file = await configFile('ok.yaml', config)
    const before = Object.getOwnPropertyDescriptor(process.stdout, 'isTTY')
    Object.defineProperty(process.stdout, 'isTTY', {value: true, configurable: true})
    let stdout: string
    try {
      ;({stdout} = await run(['--config', file]))
    } finally {
      if (before) Object.defineProperty(process.stdout, 'isTTY', before)
      else delete (process.stdout as {isTTY?: boolean}).isTTY
    }
    expect(stdout).toBe(
      [
        'NAME  ADDRESS           DATABASE  USER    TLS          PASSWORD              ALLOW',
        'prod  db.internal:5432  app       app_rw  verify-full  env:PROD_DB_PASSWORD  engineering,dba',
        'dev   localhost:15432   app_dev   dev     prefer       inline                any',
      ].join('\n'),
    )
  })

  it('takes the path from DBGATE_CONFIG', async () => {
    const file = await configFile('env.yaml', config)
    vi.stubEnv('DBGATE_CONFIG', file)
    try {
      const {result} = await run(['--json'])
      expect((result as {name: string}[]).map((t) => t.name)).toEqual(['prod', 'dev'])
    } finally {
      vi.unstubAllEnvs()
    }
  })

  it('prints config errors like a compiler and exits 2', async () => {
    const file = await configFile('bad.yaml', 'targets:\n  prod:\n    hots: db\n    database: app\n    user: u\n    port: abc\n')
    const {error, stdout, stderr} = await run(['--config', file])
    expect(error).toBeInstanceOf(Errors.CLIError)
    expect((error as Errors.CLIError).oclif.exit).toBe(2)
    expect(stdout).toBe('')
    expect(stderr).toBe(
      [
        `Invalid configuration in ${file}: 3 errors`,
        `${file}:2:3 targets.prod.host: missing required key "host" in targets.prod — fix: add "host: db.internal"`,
        `${file}:3:5 targets.prod.hots: unknown key "hots" in targets.prod; did you mean "host"? — fix: rename it to "host"`,
        `${file}:6:11 targets.prod.port: expected an integer between 1 and 65535, got "abc" — fix: write an integer between 1 and 65535`,
      ].join('\n'),
    )
  })

  it('reports config errors as JSON with exit code 2 under --json', async () => {
    const file = await configFile('bad.yaml', 'targets:\n  prod:\n    host: db\n    database: app\n    user: u\n    tls: on\n')
    const {error, stdout, stderr} = await run(['--config', file, '--json'])
    expect(error).toBeUndefined()
    expect(process.exitCode).toBe(2)
    expect(stderr).toBe('')
    const json = JSON.parse(stdout) as {error: {code: string; exitCode: number; issues: {line: number; keyPath: string}[]}}
    expect(json.error.code).toBe('DBGATE_CONFIG_INVALID')
    expect(json.error.exitCode).toBe(2)
    expect(json.error.issues.map((i) => `${i.line} ${i.keyPath}`)).toEqual(['6 targets.prod.tls'])
  })

  it('lists where it looked when there is no config, and exits 2', async () => {
    const {error, stderr} = await run(['--config', join(dir, 'absent.yaml')])
    expect((error as Errors.CLIError).oclif.exit).toBe(2)
    expect(stderr).toContain(`Config file ${join(dir, 'absent.yaml')} (from --config) does not exist\nLooked in:\n  ${join(dir, 'absent.yaml')}`)
  })
})
