import {spawn, type ChildProcess} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {exportJWK, generateKeyPair, type JWK} from 'jose'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {GatewayWorkerBrief, GatewayWorkerMessage} from '../../src/bench/gateway-worker.js'
import {startDevOidcProvider, type DevProvider} from '../../src/dev/oidc-dev-provider.js'
import {mint} from '../identity/helpers.js'
import {createTestDatabase} from '../helpers/pg.js'
import {run} from '../helpers/run.js'

// The benchmark's "gateway (TLS)" path: the gateway worker, signed into with a token over TLS, as pgbench does.
let idp: DevProvider
let key: JWK
let worker: ChildProcess
let port: number
let dataDir: string

beforeAll(async () => {
  const {privateKey} = await generateKeyPair('RS256', {extractable: true})
  key = {...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'bench-test-key'}
  idp = await startDevOidcProvider({signingKey: key})
  const db = await createTestDatabase('bench_gw')
  dataDir = await mkdtemp(path.join(tmpdir(), 'dbgate-bench-gw-test-'))
  const brief: GatewayWorkerBrief = {pg: db, identity: {issuer: idp.issuer, clientId: idp.cliClientId}, group: 'bench', target: 'bench', dataDir}
  worker = spawn(process.execPath, [path.resolve('dist/bench/gateway-worker.js')], {env: {...process.env, DBGATE_BENCH_GATEWAY: JSON.stringify(brief)}, stdio: ['ignore', 'inherit', 'inherit', 'ipc']})
  port = await new Promise<number>((resolve, reject) => {
    worker.on('message', (m: GatewayWorkerMessage) => {
      if (m.type === 'ready') resolve(m.port)
      else if (m.type === 'error') reject(new Error(m.message))
    })
    worker.once('exit', (code) => reject(new Error(`the gateway worker exited with ${code}`)))
  })
})
afterAll(async () => {
  if (worker && worker.exitCode === null) {
    const exited = new Promise((r) => worker.once('exit', r))
    worker.send({type: 'close'})
    await exited
  }
  await idp?.stop()
  if (dataDir) await rm(dataDir, {recursive: true, force: true})
})

describe('the gateway worker (bench path gateway-tls)', () => {
  const env = (password: string, sslmode: string) => ({PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: 'bench@example.com', PGPASSWORD: password, PGDATABASE: 'bench', PGSSLMODE: sslmode, PGCONNECT_TIMEOUT: '10'})
  const token = () => mint(key, {iss: idp.issuer, aud: idp.cliClientId, sub: 'bench', email: 'bench@example.com', groups: ['bench']})

  it('lets pgbench-style clients in with sslmode=require and a token as the password', async () => {
    const r = await run('psql', ['-XAtc', 'select 1'], {env: env(await token(), 'require')})
    expect(r).toMatchObject({code: 0, stdout: '1\n'})
    const info = await run('psql', ['-X', '-c', '\\conninfo'], {env: env(await token(), 'require')})
    expect(info.stdout).toMatch(/SSL connection \(protocol: TLSv1\.[23]/)
  })

  it('refuses a client without TLS, and a token signed by another key', async () => {
    const plain = await run('psql', ['-XAtc', 'select 1'], {env: env(await token(), 'disable')})
    expect(plain.code).not.toBe(0)
    expect(plain.stderr).toMatch(/TLS/)
    const {privateKey} = await generateKeyPair('RS256', {extractable: true})
    const foreign = await mint({...(await exportJWK(privateKey)), kid: 'bench-test-key'}, {iss: idp.issuer, aud: idp.cliClientId, sub: 'bench', email: 'bench@example.com', groups: ['bench']})
    const forged = await run('psql', ['-XAtc', 'select 1'], {env: env(foreign, 'require')})
    expect(forged.code).not.toBe(0)
    expect(forged.stderr).toMatch(/signature does not verify/)
  })
})
