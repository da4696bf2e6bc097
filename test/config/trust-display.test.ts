import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {isolatedEnv} from '../helpers/open.js'
import {run} from '../helpers/run.js'

const BIN = path.resolve('bin/run.js')

/**
 * `dbgate config trust` tells the person what the file they trusted names: where their sign-in
 * and passwords will go. The file writes those names, and YAML's double quotes can put any
 * character in them (host names are checked, an issuer, a bucket or a path are not): an erased line, a carriage return, concealed text, and the person would read
 * a line the file chose instead of the address it names.
 */
describe('what dbgate config trust shows of a file', () => {
  let repo: string
  let env: NodeJS.ProcessEnv
  beforeAll(async () => {
    repo = await mkdtemp(path.join(tmpdir(), 'dbgate-cloned-'))
    env = {...isolatedEnv(), DBGATE_CONFIG: ''}
  })
  afterAll(async () => {
    await rm(repo, {recursive: true, force: true})
  })

  it('shows every name the file chose as text, control characters as escapes', async () => {
    const files = [
      [
        'identity:',
        '  issuer: "https://login.example.com/\\e[2K\\r  identity: https://login.example.com"',
        '  clientId: dbgate-cli',
        'bucket: "file:///tmp/audit\\e[8m somewhere else"',
        'targets:',
        '  prod:',
        '    host: db.internal',
        '    database: app',
        '    user: app',
        '    password: env:PROD_DB_PASSWORD',
        '',
      ],
      [
        'gateway:',
        '  address: 127.0.0.1:6432',
        '  ca: "/tmp/ca\\u202e.pem"',
        '',
      ],
    ]
    for (const lines of files) {
      await writeFile(path.join(repo, 'dbgate.yaml'), lines.join('\n'))
      for (const json of [false, true]) {
        const r = await run('node', [BIN, 'config', 'trust', ...(json ? ['--json'] : [])], {cwd: repo, env})
        expect(r.code, r.stderr).toBe(0)
        for (const raw of ['\x1b', '\r', '\u202e']) expect(r.stdout, `${JSON.stringify(raw)} reached the terminal`).not.toContain(raw)
        if (!json) expect(r.stdout).toMatch(/\\x1b|\\u202e/)
      }
    }
  })
})
