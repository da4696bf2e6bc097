import {appendFile, mkdtemp, readFile, rm, stat, writeFile} from 'node:fs/promises'
import net, {type AddressInfo} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {buildTunnelHooks} from '../../src/pipeline/index.js'
import {people, tempBucketUrl, watchNotices, type People} from '../approvals/helpers.js'
import {makePki, type TestPki} from '../gateway/helpers.js'
import {fixture, loginAs, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'

const BIN = path.resolve('bin/run.js')

/**
 * A repository someone clones carries a dbgate.yaml naming a "gateway" of its own: a loopback TLS
 * listener with a CA this test made. Run inside that repository, dbgate must not send the person's
 * sign-in there until they trust the file, as it is, with `dbgate config trust`.
 */
describe('a dbgate.yaml found in the current directory naming a gateway', () => {
  let f: Fixture
  let pki: TestPki
  let repo: string
  let env: NodeJS.ProcessEnv
  let planted: tls.Server
  let port: number
  let connections = 0

  const dbgate = (args: string[], extra: NodeJS.ProcessEnv = {}) => run('node', [BIN, ...args], {cwd: repo, env: {...env, ...extra}})

  beforeAll(async () => {
    ;[f, pki] = await Promise.all([fixture(), makePki()])
    planted = tls.createServer({cert: await readFile(pki.cert), key: await readFile(pki.key)}, (s) => s.destroy())
    // Every TCP connection counts, before any TLS: not even a handshake may reach it untrusted.
    planted.on('connection', () => connections++)
    planted.on('tlsClientError', () => {})
    await new Promise<void>((r) => planted.listen(0, '127.0.0.1', r))
    port = (planted.address() as AddressInfo).port
    repo = await mkdtemp(path.join(tmpdir(), 'dbgate-cloned-'))
    await writeFile(
      path.join(repo, 'dbgate.yaml'),
      ['identity:', `  issuer: ${f.dev.issuer}`, `  clientId: ${f.dev.cliClientId}`, 'gateway:', `  address: 127.0.0.1:${port}`, `  ca: ${pki.ca}`, `  api: 127.0.0.1:${port}`, ''].join('\n'),
    )
    env = {...isolatedEnv(), XDG_CONFIG_HOME: f.env.XDG_CONFIG_HOME, DBGATE_KEYRING: 'off', DBGATE_CONFIG: undefined, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: ''}
    await loginAs(f, {user: 'alice'})
  })
  afterAll(async () => {
    await new Promise((r) => planted?.close(r))
    await f?.close()
    await Promise.all([repo, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  it('sends nothing from connect, targets, mcp or approvals list, and says which file, where it would go, and the fix', async () => {
    const connect = await dbgate(['connect', 'prod', '--', 'true'])
    expect(connect.code).toBe(2)
    expect(connect.stderr).toContain(`./dbgate.yaml was found in the current directory and you have not trusted it: it names a gateway, 127.0.0.1:${port}, that would receive your sign-in`)
    expect(connect.stderr).toContain('run `dbgate config trust`')
    expect(connect.stderr).toContain('pass --config ./dbgate.yaml to use it once')
    const targets = await dbgate(['targets', '--json'])
    expect(targets.code).toBe(2)
    expect(JSON.parse(targets.stdout)).toMatchObject({error: {code: 'DBGATE_CONFIG_UNTRUSTED'}})
    const mcp = await dbgate(['mcp', 'prod'])
    expect(mcp.code).toBe(2)
    expect(mcp.stderr).toContain('that would receive your sign-in')
    const list = await dbgate(['approvals', 'list'])
    expect(list.code).toBe(2)
    expect(list.stderr).toContain(`it names a gateway, 127.0.0.1:${port}, whose certificate would decide which approval requests`)
    expect(connections).toBe(0)
  })

  it('goes there once trusted, stops again when the file changes, and takes an explicitly named file without trust', async () => {
    const trusted = await dbgate(['config', 'trust'])
    expect(trusted.code).toBe(0)
    expect(trusted.stdout).toContain(`gateway: 127.0.0.1:${port}`)
    const record = path.join(env.XDG_STATE_HOME!, 'dbgate', 'trusted-configs.json')
    expect((await stat(record)).mode & 0o777).toBe(0o600)
    expect(Object.keys(JSON.parse(await readFile(record, 'utf8')).files)).toEqual([path.join(repo, 'dbgate.yaml')])

    // The planted listener is no gateway: the commands fail there, but they did go.
    expect((await dbgate(['targets'])).code).not.toBe(2)
    const afterTargets = connections
    expect(afterTargets).toBeGreaterThan(0)
    expect((await dbgate(['connect', 'prod', '--', 'true'])).code).not.toBe(2)
    expect(connections).toBeGreaterThan(afterTargets)

    await appendFile(path.join(repo, 'dbgate.yaml'), '# one more line\n')
    const before = connections
    const changed = await dbgate(['connect', 'prod', '--', 'true'])
    expect(changed.code).toBe(2)
    expect(changed.stderr).toContain('./dbgate.yaml was found in the current directory and has changed since you trusted it')
    expect((await dbgate(['targets'])).code).toBe(2)
    expect(connections).toBe(before)
    const listed = await dbgate(['config', 'trust', '--list', '--json'])
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({path: path.join(repo, 'dbgate.yaml'), state: 'changed'})])

    // Named on purpose, the same file needs no trust.
    expect((await dbgate(['targets', '--config', './dbgate.yaml'])).code).not.toBe(2)
    expect(connections).toBeGreaterThan(before)
    const viaEnv = connections
    expect((await dbgate(['targets'], {DBGATE_CONFIG: path.join(repo, 'dbgate.yaml')})).code).not.toBe(2)
    expect(connections).toBeGreaterThan(viaEnv)

    expect((await dbgate(['config', 'trust', '--forget'])).stdout).toContain('No longer trusted')
    expect(JSON.parse((await dbgate(['config', 'trust', '--list', '--json'])).stdout)).toEqual([])
  })
})

/**
 * A repository's dbgate.yaml naming targets of its own (local mode, no gateway) on a host it
 * chose, whose passwords it takes from what is the person's: an environment variable, a file, a
 * keychain entry, their AWS credentials. The "database" is a loopback listener that counts TCP
 * connections: untrusted, nothing may reach it; a password written in the file itself is the
 * file's, and goes as before.
 */
describe('a dbgate.yaml found in the current directory naming targets that take your own passwords', () => {
  let repo: string
  let env: NodeJS.ProcessEnv
  let planted: net.Server
  let port: number
  let connections = 0
  const personal: [name: string, source: string, told: string][] = [
    ['fromenv', 'password: env:PROD_DB_PASSWORD', 'your password from env:PROD_DB_PASSWORD'],
    ['fromfile', 'password: file:~/.ssh/id_ed25519', 'your password from file:'],
    ['fromkeychain', 'password: keychain:prod', 'your password from keychain:prod'],
    ['fromaws', 'password: {rdsIam: {region: eu-west-1, profile: prod}}\n    tls: require', 'an RDS IAM token made with your AWS credentials (region eu-west-1, profile prod)'],
  ]

  const dbgate = (args: string[]) => run('node', [BIN, ...args], {cwd: repo, env})

  beforeAll(async () => {
    planted = net.createServer((s) => s.destroy())
    planted.on('connection', () => connections++)
    await new Promise<void>((r) => planted.listen(0, '127.0.0.1', r))
    port = (planted.address() as AddressInfo).port
    repo = await mkdtemp(path.join(tmpdir(), 'dbgate-cloned-'))
    const target = (name: string, extra: string) => [`  ${name}:`, '    host: 127.0.0.1', `    port: ${port}`, '    database: app', '    user: app', '    connectTimeout: 2s', ...extra.split('\n').map((l) => `    ${l.trim()}`)]
    const lines = ['targets:', ...personal.flatMap(([name, source]) => target(name, source)), ...target('own', 'password: the-files-own\ntls: disable'), '']
    await writeFile(path.join(repo, 'dbgate.yaml'), lines.join('\n'))
    env = {...isolatedEnv(), PROD_DB_PASSWORD: 'the-persons-secret', DBGATE_KEYRING: 'off', DBGATE_CONFIG: undefined}
  })
  afterAll(async () => {
    await new Promise((r) => planted?.close(r))
    if (repo) await rm(repo, {recursive: true, force: true})
  })

  it('dials none of them from connect, mcp or masking scan, and says which target, where, and whose password', async () => {
    for (const [name, , told] of personal) {
      for (const args of [['connect', name, '--', 'true'], ['mcp', name], ['masking', 'scan', name]]) {
        const r = await dbgate(args)
        expect(r.code, args.join(' ')).toBe(2)
        expect(r.stderr, args.join(' ')).toContain(`./dbgate.yaml was found in the current directory and you have not trusted it: it names a target, ${name}, at 127.0.0.1:${port}, that would receive ${told}`)
        expect(r.stderr, args.join(' ')).toContain('Nothing was sent.')
        expect(r.stderr, args.join(' ')).not.toContain('the-persons-secret')
      }
    }
    expect(connections).toBe(0)
  })

  it("dials a target whose password is the file's own, untrusted, as before", async () => {
    const r = await dbgate(['connect', 'own', '--', 'true'])
    expect(r.stderr).not.toContain('DBGATE_CONFIG_UNTRUSTED')
    expect(connections).toBeGreaterThan(0)
  })

  it('names each of them when trusting, and dials them once trusted', async () => {
    const trusted = await dbgate(['config', 'trust'])
    expect(trusted.code).toBe(0)
    for (const [name, , told] of personal) expect(trusted.stdout).toContain(`target ${name}: 127.0.0.1:${port} receives ${told}`)
    expect(trusted.stdout).not.toContain('target own')
    const before = connections
    // The listener is no database: the connect fails there, but it did go.
    expect((await dbgate(['connect', 'fromenv', '--', 'true'])).code).not.toBe(2)
    expect(connections).toBeGreaterThan(before)
  })
})

/**
 * The same repository's dbgate.yaml naming the bucket a reviewer decides in (no gateway): a
 * decision seals the reviewer's fresh token to the request, so approve and deny need trust too;
 * listing and everything that sends nothing work untrusted as before.
 */
describe('approve and deny with a dbgate.yaml found in the current directory', () => {
  let p: People
  let db: UpstreamInfo
  let t: PipelineTunnel
  let repo: string
  let file: string
  let state: NodeJS.ProcessEnv

  const bob = (args: string[]) => run('node', [BIN, ...args], {cwd: repo, env: {...state, ...p.env('bob'), DBGATE_CONFIG: undefined, DBGATE_TOKEN: '', DBGATE_CLIENT_ID: '', DBGATE_CLIENT_SECRET: ''}})
  const stateOf = async (id: string) => {
    const listed = JSON.parse((await bob(['approvals', 'list', '--all', '--json'])).stdout) as {id: string; state: string}[]
    return listed.find((r) => r.id === id)?.state
  }
  const held = async (table: string) => {
    const c = await t.client()
    const w = watchNotices(c)
    const result = c.query(`create table ${table} (id int)`).catch((e: Error) => e)
    return {id: await w.approvalId(), result}
  }

  beforeAll(async () => {
    p = await people()
    db = await createTestDatabase('cwdtrust')
    const bucketUrl = tempBucketUrl()
    for (const u of ['alice', 'bob']) await p.login(u)
    const target = 'allow: [engineering]\nreviewers: [dba]'
    t = await openPipelineTunnel(db, target, {
      top: `bucket: ${bucketUrl}`,
      identity: {issuer: p.f.dev.issuer, clientId: p.f.dev.cliClientId, env: p.env('alice')},
      hooks: (ctx) => buildTunnelHooks({...ctx, approvalPollMs: 100}),
    })
    repo = await mkdtemp(path.join(tmpdir(), 'dbgate-cloned-'))
    file = path.join(repo, 'dbgate.yaml')
    const yaml = [`identity:\n  issuer: ${p.f.dev.issuer}\n  clientId: ${p.f.dev.cliClientId}`, `bucket: ${bucketUrl}`, 'targets:', '  app:', `    host: ${db.host}`, `    port: ${db.port}`, `    database: ${db.database}`, `    user: ${db.user}`, ...target.split('\n').map((l) => `    ${l}`), ''].join('\n')
    await writeFile(file, yaml)
    const {XDG_STATE_HOME, XDG_CACHE_HOME, XDG_DATA_HOME, HOME} = isolatedEnv()
    state = {XDG_STATE_HOME, XDG_CACHE_HOME, XDG_DATA_HOME, HOME}
  })
  afterAll(async () => {
    await t?.close()
    await p?.close()
    if (repo) await rm(repo, {recursive: true, force: true})
  })

  it('writes no decision until the file is trusted, again after it changes, and takes --config without trust', async () => {
    const first = await held('planted_one')
    const deny = await bob(['deny', first.id, '--reason', 'no'])
    expect(deny.code).toBe(2)
    expect(deny.stderr).toContain('./dbgate.yaml was found in the current directory and you have not trusted it: it names the bucket')
    const approve = await bob(['approve', first.id, '--json'])
    expect(approve.code).toBe(2)
    expect(JSON.parse(approve.stdout)).toMatchObject({error: {code: 'DBGATE_CONFIG_UNTRUSTED'}})
    // Listing sends and seals nothing: it works untrusted, and shows the request still waiting.
    expect(await stateOf(first.id)).toBe('pending')

    expect((await bob(['config', 'trust'])).code).toBe(0)
    expect((await bob(['deny', first.id, '--reason', 'trusted now'])).code).toBe(0)
    expect(await first.result).toMatchObject({message: expect.stringContaining('denied by bob@example.com: trusted now')})

    await appendFile(file, '# edited\n')
    const second = await held('planted_two')
    const changed = await bob(['approve', second.id])
    expect(changed.code).toBe(2)
    expect(changed.stderr).toContain('has changed since you trusted it')
    expect(await stateOf(second.id)).toBe('pending')

    expect((await bob(['deny', second.id, '--reason', 'named', '--config', './dbgate.yaml'])).code).toBe(0)
    expect(await second.result).toMatchObject({message: expect.stringContaining('denied by bob@example.com: named')})
  })
})
