import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseConfigText} from '../../src/config/parse.js'
import {freePort} from '../../src/dev/embedded-pg.js'
import {startDevOidcProvider, type DevProvider} from '../../src/dev/oidc-dev-provider.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'
import {gatewayConfigText, makePki, type TestPki} from './helpers.js'
import {GatewayProcess, httpGet, until} from './process-helpers.js'

const BIN = path.resolve('bin/run.js')

/** What an operator sees when `dbgate gateway` cannot start, or cannot serve yet. */
describe('dbgate gateway: starting with a broken gateway.yaml or without the IdP', () => {
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let idp: DevProvider | undefined
  const procs: GatewayProcess[] = []

  beforeAll(async () => {
    ;[pki, db] = await Promise.all([makePki(), createTestDatabase('gwstart')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwstart-'))
  })
  afterAll(async () => {
    for (const p of procs) p.kill()
    await idp?.stop()
    await Promise.all([dir, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  const write = async (name: string, text: string) => {
    const file = path.join(dir, name)
    await writeFile(file, text)
    return file
  }
  const gateway = (file: string, workers: string, env: NodeJS.ProcessEnv = {}) =>
    run(process.execPath, [BIN, 'gateway', '--config', file, '--workers', workers], {env: {...isolatedEnv(), NO_COLOR: '1', TEST_APP_PASSWORD: db.password, ...env}, timeoutMs: 30_000})
  const config = (server: string[] = [], issuer = 'http://127.0.0.1:1') => gatewayConfigText({pki, dir: path.join(dir, 'state'), issuer, clientId: 'dbgate-cli', server: ['ops: off', ...server], targets: targetConfigText('app', db, 'allow: [engineering]')})

  it('offers a gateway.yaml, one that parses as a gateway configuration, when the file does not exist', async () => {
    const r = await gateway(path.join(dir, 'nowhere.yaml'), '1')
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/nowhere\.yaml \(from --config\) does not exist/)
    const example = r.stderr.split('a minimal gateway.yaml (docs/gateway.md):\n\n')[1]
    expect(example).toBeDefined()
    const {config} = parseConfigText(example!, '/etc/dbgate/gateway.yaml', {env: {HOME: '/home/gw'}})
    expect(config.server?.tls).toEqual({cert: '/etc/dbgate/tls.crt', key: '/etc/dbgate/tls.key'})
    expect(config.identity?.issuer).toBe('https://login.example.com')
    expect(Object.keys(config.targets)).toEqual(['prod'])
  })

  it('says a file without a server section configures no gateway, and what to add', async () => {
    const file = await write('client.yaml', ['targets:', ...targetConfigText('app', db)].join('\n') + '\n')
    const r = await gateway(file, '1')
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/client\.yaml has no server section, so it does not configure a gateway/)
    expect(r.stderr).toMatch(/Try this: add server: \{listen: 0\.0\.0\.0:6432, tls: /)
  })

  it('with several workers, refuses a missing TLS file once, naming the key and the file, before forking any worker', async () => {
    const file = await write('no-cert.yaml', config().replace(pki.cert, path.join(dir, 'missing.crt')))
    const r = await gateway(file, '2')
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/cannot read server\.tls\.cert \(.*missing\.crt\): no such file/)
    expect(r.stderr).toMatch(/Try this: point server\.tls\.cert at the PEM certificate chain/)
    expect(r.stderr.match(/cannot read server\.tls\.cert/g)).toHaveLength(1)
    // The old way: each worker died of it and the primary reported "exited (code 2) before it could serve".
    expect(r.stdout).not.toMatch(/worker \d .*exited/)
  })

  it('with several workers, names a target password that cannot be resolved, once', async () => {
    const r = await gateway(await write('no-env.yaml', config()), '2', {TEST_APP_PASSWORD: undefined})
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/environment variable TEST_APP_PASSWORD is not set \(needed by target "app", targets\.app\.password\)/)
    expect(r.stdout).not.toMatch(/worker \d .*exited/)
  })

  it('does not say it is ready while the IdP is unreachable, says why, and becomes ready once the IdP answers', async () => {
    const idpPort = await freePort()
    const file = await write('idp-later.yaml', config(['ops: 127.0.0.1:0'], `http://127.0.0.1:${idpPort}`).replace('  ops: off\n', ''))
    const gw = new GatewayProcess(file, {...isolatedEnv(), TEST_APP_PASSWORD: db.password}, ['--workers', '1'])
    procs.push(gw)
    const why = await gw.line((l) => /cannot load the signing keys/.test(l.msg))
    expect(why).toMatchObject({level: 'error'})
    expect(why.msg).toMatch(new RegExp(`cannot load the signing keys of http://127\\.0\\.0\\.1:${idpPort}: .*nobody can sign in until they load`))
    const opsLine = await gw.line((l) => /^ops endpoint on/.test(l.msg))
    const ops = Number(/:(\d+) /.exec(opsLine.msg)![1])
    const readyz = await httpGet(ops, '/readyz')
    expect(readyz.status).toBe(503)
    expect(JSON.parse(readyz.body)).toMatchObject({status: 'not-ready', checks: [{name: 'idp-keys', detail: expect.stringMatching(/cannot load the signing keys/)}]})
    expect(gw.lines.filter((l) => /ready to accept/.test(l.msg))).toEqual([])

    idp = await startDevOidcProvider({port: idpPort})
    const {port} = await gw.started()
    expect(port).toBeGreaterThan(0)
    await until(async () => ((await httpGet(ops, '/readyz')).status === 200 ? true : undefined))
    gw.signal('SIGTERM')
    expect(await gw.exited).toEqual({code: 0, signal: null})
  })
})
