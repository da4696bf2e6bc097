import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {isolatedEnv} from '../helpers/open.js'
import {run} from '../helpers/run.js'
import {plantedIdp} from './planted-idp.js'

const BIN = path.resolve('bin/run.js')

/**
 * A repository someone clones carries a dbgate.yaml whose identity section names an issuer of its
 * own and, as the client secret, something of the person's: a variable of their environment, a
 * file of theirs. Or the person runs with DBGATE_CLIENT_ID and DBGATE_CLIENT_SECRET set (a CI job).
 * Until the person trusts that file, none of it may go to that issuer.
 */
describe("an untrusted ./dbgate.yaml's issuer gets none of the person's secrets", () => {
  const SECRET = 'the-persons-own-secret-9f8e7d'
  let idp: Awaited<ReturnType<typeof plantedIdp>>
  let repo: string
  let env: NodeJS.ProcessEnv
  const dbgate = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
    run('node', [BIN, ...args], {cwd: repo, env: {...env, ...extra}, timeoutMs: 30_000})
  const plant = (identityExtra: string[]) =>
    writeFile(
      path.join(repo, 'dbgate.yaml'),
      [
        'identity:',
        `  issuer: ${idp.issuer}`,
        '  clientId: dbgate-cli',
        ...identityExtra.map((l) => `  ${l}`),
        'targets:',
        '  prod:',
        '    host: 127.0.0.1',
        '    port: 1',
        '    database: app',
        '    user: app',
        '    password: the-files-own',
        '    connectTimeout: 2s',
        '',
      ].join('\n'),
    )
  const leaked = () => idp.seen.filter((r) => r.includes(SECRET) || r.includes(encodeURIComponent(SECRET)))

  beforeAll(async () => {
    idp = await plantedIdp()
    repo = await mkdtemp(path.join(tmpdir(), 'dbgate-cloned-'))
    await writeFile(path.join(repo, '..', `${path.basename(repo)}-secret`), SECRET)
    env = {...isolatedEnv(), DBGATE_CONFIG: '', DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: '', VICTIM_SECRET: SECRET}
  })
  afterAll(async () => {
    await new Promise((r) => idp?.server.close(r))
    await rm(repo, {recursive: true, force: true})
    await rm(`${repo}-secret`, {force: true})
  })

  it('refuses identity.clientSecret read from env: or file: in login, whoami, token, logout and connect, naming the file, the key and the fix', async () => {
    for (const source of ['env:VICTIM_SECRET', `file:${repo}-secret`]) {
      await plant([`clientSecret: ${source}`])
      for (const args of [['login', '--no-browser'], ['whoami'], ['token'], ['logout'], ['connect', 'prod', '--', 'true']]) {
        const r = await dbgate(args)
        expect(r.code, `${source} ${args.join(' ')}: ${r.stderr}`).toBe(2)
        expect(r.stderr).toContain('./dbgate.yaml was found in the current directory and you have not trusted it')
        expect(r.stderr).toContain(`identity.clientSecret from ${source}`)
        expect(r.stderr).toContain(idp.issuer)
        expect(r.stderr).toContain('dbgate config trust')
      }
    }
    expect(leaked()).toEqual([])
  })

  it('refuses DBGATE_CLIENT_ID and DBGATE_CLIENT_SECRET in login --client-credentials, token and connect', async () => {
    await plant([])
    const service = {DBGATE_CLIENT_ID: 'ci-bot', DBGATE_CLIENT_SECRET: SECRET}
    for (const args of [['login', '--client-credentials'], ['token'], ['whoami'], ['connect', 'prod', '--', 'true']]) {
      const r = await dbgate(args, service)
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2)
      expect(r.stderr).toContain('you have not trusted it')
      expect(r.stderr).toContain('DBGATE_CLIENT_SECRET')
    }
    expect(leaked()).toEqual([])
  })

  it("still signs in with the file's own issuer and inline secret untrusted, and sends the person's once trusted or named with --config", async () => {
    await plant(['clientSecret: the-files-own-client-secret'])
    const own = await dbgate(['login', '--no-browser'])
    // The planted IdP refuses the grant: the login got that far, with the file's own secret.
    expect(own.stderr).toContain('Sign-in was denied at the identity provider')
    expect(idp.seen.some((r) => r.includes('the-files-own-client-secret'))).toBe(true)

    await plant(['clientSecret: env:VICTIM_SECRET'])
    const named = await dbgate(['login', '--no-browser', '--config', './dbgate.yaml'])
    expect(named.stderr).not.toContain('you have not trusted it')
    expect(leaked().length).toBeGreaterThan(0)
    idp.seen.length = 0
    expect((await dbgate(['config', 'trust'])).code).toBe(0)
    const trusted = await dbgate(['login', '--no-browser'])
    expect(trusted.stderr).not.toContain('you have not trusted it')
    expect(leaked().length).toBeGreaterThan(0)
  })
})
