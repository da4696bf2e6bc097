import {generateKeyPairSync} from 'node:crypto'
import {readFile, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it, vi} from 'vitest'
import {FileBucket} from '../../src/bucket/index.js'
import {Recorder} from '../../src/audit/recorder.js'
import {shipPending} from '../../src/audit/shipper.js'
import {fromPrivatePem, keyObjectKey, loadKeyRing, publishKey, type InstallationKey, type KeyRing, type PublishedKey} from '../../src/audit/signing.js'
import {signerTrust} from '../../src/audit/trust.js'
import {verifySession} from '../../src/audit/verify.js'
import SessionsVerify from '../../src/commands/sessions/verify.js'
import ReportCommand from '../../src/commands/report.js'
import type {Identity} from '../../src/identity/types.js'
import {alice, removeTempDirs, stmt, tempDir} from './helpers.js'
import {captureCommand} from '../helpers/capture.js'

const root = join(import.meta.dirname, '..', '..')
const bob: Identity = {...alice, subject: 'u-bob', email: 'bob@example.com', tokenHash: 'c'.repeat(64)}
const newKey = (): InstallationKey => fromPrivatePem(generateKeyPairSync('ed25519').privateKey.export({type: 'pkcs8', format: 'pem'}).toString())

let gateway: InstallationKey
let laptop: InstallationKey
let impostor: InstallationKey
let bucket: FileBucket
let bucketDir: string
let keys: KeyRing
const savedEnv = {...process.env}

/** What the gateway publishes: its key, marked as a gateway's, under its name. */
async function publishGatewayKey(b: FileBucket, key: InstallationKey, name: string): Promise<void> {
  const now = new Date().toISOString()
  const doc: PublishedKey = {
    v: 1,
    keyId: key.keyId,
    alg: 'ed25519',
    publicKey: key.publicKeyPem,
    host: hostname(),
    createdAt: now,
    identity: {subject: `gateway:${name}`, issuer: 'dbgate-gateway', kind: 'service', boundAt: now},
    history: [],
    signer: {kind: 'gateway', name},
  }
  await b.put(keyObjectKey(key.keyId), JSON.stringify(doc, null, 2) + '\n')
}

/** A real recorded session of `who`, signed by `signer`, as the bytes of its log. */
async function recordSession(signer: InstallationKey, who: Identity, sessionId: string): Promise<{text: string; spoolDir: string}> {
  const spoolDir = await tempDir('dbgate-spool-')
  const rec = await Recorder.open({signer, dbgateVersion: '0.1.0', spoolDir, checkpointEvery: 0})
  const s = rec.startSession({sessionId, identity: who, target: 'prod', database: 'app', dbUser: 'app_rw', client: {address: '127.0.0.1:1'}, startedAt: new Date('2026-03-01T10:00:00Z')})
  s.statement(stmt(sessionId, 'select * from orders'))
  await s.end('client-closed')
  return {text: await readFile(s.spoolPath, 'utf8'), spoolDir}
}

beforeAll(async () => {
  gateway = newKey()
  laptop = newKey()
  impostor = newKey()
  bucketDir = await tempDir('dbgate-bucket-')
  bucket = new FileBucket(bucketDir)
  await publishGatewayKey(bucket, gateway, 'gw-prod')
  // alice's laptop key, correctly published and bound to her: valid for her own sessions in local mode
  await publishKey(bucket, alice, laptop)
  keys = (await loadKeyRing(bucket)).keys
})
afterEach(() => {
  vi.restoreAllMocks()
  process.env = {...savedEnv}
})
afterAll(async () => {
  process.env = savedEnv
  await removeTempDirs()
})

const problems = (text: string, names?: string[], ring: KeyRing = keys) =>
  verifySession(text, ring, {trust: signerTrust(names, undefined)}).problems.map((p) => `${p.code}: ${p.message}`)

describe('trusted signers (verifySession)', () => {
  it('a session signed by the laptop key verifies when no signer is named (the attack: a real, published key)', async () => {
    const {text} = await recordSession(laptop, alice, 'laptop-1')
    expect(problems(text)).toEqual([])
  })

  it('with the gateway trusted, a session signed by the laptop key fails, naming that key and the trusted ones', async () => {
    const {text} = await recordSession(laptop, alice, 'laptop-2')
    for (const names of [['gw-prod'], [gateway.keyId]]) {
      const found = problems(text, names)
      expect(found).toHaveLength(1)
      expect(found[0]).toMatch(/^UNTRUSTED_SIGNER: /)
      expect(found[0]).toContain(laptop.keyId)
      expect(found[0]).toContain('alice@example.com')
      expect(found[0]).toContain(`trusted: ${names[0]}`)
    }
  })

  it('a session signed by the gateway passes when the gateway is trusted by name or by key id, for anyone it served', async () => {
    for (const who of [alice, bob]) {
      const {text} = await recordSession(gateway, who, `gw-${who.subject}`)
      expect(problems(text, ['gw-prod'])).toEqual([])
      expect(problems(text, [gateway.keyId.toUpperCase()])).toEqual([])
      const r = verifySession(text, keys, {trust: signerTrust(['gw-prod'], undefined)})
      expect(r).toMatchObject({ok: true, status: 'ended', keyIds: [gateway.keyId]})
      expect(r.signedThroughSeq).toBe(r.lines)
    }
  })

  it("a gateway's key does not verify without a named signer: it is bound to no one's identity", async () => {
    const {text} = await recordSession(gateway, bob, 'gw-unnamed')
    const found = problems(text)
    expect(found).toHaveLength(1)
    expect(found[0]).toMatch(/^UNTRUSTED_SIGNER: .*gateway gw-prod.*--signer gw-prod/)
  })

  it('a laptop key trusted by id still has to be bound to the session identity', async () => {
    const {text} = await recordSession(laptop, bob, 'laptop-as-bob')
    const found = problems(text, [laptop.keyId])
    expect(found.length).toBeGreaterThan(0)
    for (const p of found) expect(p).toMatch(/^KEY_IDENTITY_MISMATCH: /)
  })

  it('another key calling itself gw-prod passes a trust by name, but not a trust by key id', async () => {
    const b = new FileBucket(await tempDir('dbgate-bucket-'))
    await publishGatewayKey(b, gateway, 'gw-prod')
    await publishGatewayKey(b, impostor, 'gw-prod')
    const ring = (await loadKeyRing(b)).keys
    const {text} = await recordSession(impostor, alice, 'impostor')
    expect(problems(text, ['gw-prod'], ring)).toEqual([])
    expect(problems(text, [gateway.keyId], ring)).toEqual([expect.stringMatching(new RegExp(`^UNTRUSTED_SIGNER: signed by key ${impostor.keyId} \\(gateway gw-prod\\)`))])
  })

  it('a gateway key document without its name is refused when the key ring is read', async () => {
    const b = new FileBucket(await tempDir('dbgate-bucket-'))
    await publishGatewayKey(b, gateway, 'gw-prod')
    const doc = JSON.parse((await b.get(keyObjectKey(gateway.keyId))).body.toString()) as Record<string, unknown>
    doc.signer = {kind: 'gateway'}
    await b.put(keyObjectKey(gateway.keyId), JSON.stringify(doc))
    const {keys: ring, errors} = await loadKeyRing(b)
    expect(ring.size).toBe(0)
    expect(errors).toEqual([{key: keyObjectKey(gateway.keyId), message: `published key ${keyObjectKey(gateway.keyId)} is not valid: signer.name: expected string, received undefined`}])
  })
})


describe('--signer and recording.trustedSigners', () => {
  let bucketUrl: string
  let configFile: string

  beforeAll(async () => {
    process.env.XDG_CACHE_HOME = await tempDir('dbgate-cache-')
    process.env.XDG_DATA_HOME = await tempDir('dbgate-data-')
    delete process.env.DBGATE_CONFIG
    delete process.env.DBGATE_BUCKET
    const dir = await tempDir('dbgate-cmd-bucket-')
    bucketUrl = `file://${dir}`
    const b = new FileBucket(dir)
    await publishGatewayKey(b, gateway, 'gw-prod')
    await publishKey(b, alice, laptop)
    for (const [signer, who, id] of [
      [gateway, bob, 'by-gateway'],
      [laptop, alice, 'by-laptop'],
    ] as const) {
      const {spoolDir} = await recordSession(signer, who, id)
      await shipPending({bucket: b, signer, spoolDir})
    }
    configFile = join(await tempDir('dbgate-config-'), 'dbgate.yaml')
    await writeFile(configFile, `bucket: ${bucketUrl}\nrecording:\n  trustedSigners: [gw-prod]\ntargets:\n  prod:\n    host: 127.0.0.1\n    database: app\n    user: app\n`)
  })

  it('sessions verify --signer: the gateway session passes, the laptop-signed one fails with exit 1 naming its key', async () => {
    const out = await captureCommand(() => SessionsVerify.run(['--bucket', bucketUrl, '--signer', 'gw-prod', '--json'], {root}))
    expect(out.exitCode).toBe(1)
    const bySession = Object.fromEntries(out.result.sessions.map((s) => [s.sessionId, s]))
    expect(bySession['by-gateway']).toMatchObject({ok: true, problems: []})
    expect(bySession['by-laptop']).toMatchObject({ok: false, problems: [{code: 'UNTRUSTED_SIGNER'}]})
    expect(bySession['by-laptop']!.problems[0]!.message).toContain(laptop.keyId)

    const one = await captureCommand(() => SessionsVerify.run(['by-gateway', '--bucket', bucketUrl, '--signer', gateway.keyId], {root}))
    expect(one.exitCode).toBe(0)
  })

  it('recording.trustedSigners in the configuration does the same, and --signer replaces it', async () => {
    const configured = await captureCommand(() => SessionsVerify.run(['--config', configFile, '--json'], {root}))
    expect(configured.exitCode).toBe(1)
    expect(configured.result.sessions.find((s) => s.sessionId === 'by-laptop')).toMatchObject({problems: [{code: 'UNTRUSTED_SIGNER'}]})

    const replaced = await captureCommand(() => SessionsVerify.run(['by-laptop', '--config', configFile, '--signer', laptop.keyId, '--json'], {root}))
    expect(replaced.exitCode).toBe(0)
  })

  it('a named signer that matches no published key is warned about', async () => {
    const out = await captureCommand(() => SessionsVerify.run(['by-gateway', '--bucket', bucketUrl, '--signer', 'gw-prd', '--signer', 'gw-prod'], {root}))
    expect(out.stderr).toContain('trusted signer gw-prd matches no published key')
    expect(out.exitCode).toBe(0)
  })

  it('an empty recording.trustedSigners is a configuration error with file and line', async () => {
    const bad = join(await tempDir('dbgate-config-'), 'dbgate.yaml')
    await writeFile(bad, `bucket: ${bucketUrl}\nrecording:\n  trustedSigners: []\ntargets:\n  prod:\n    host: 127.0.0.1\n    database: app\n    user: app\n`)
    await expect(captureCommand(() => SessionsVerify.run(['--config', bad], {root}))).rejects.toMatchObject({oclif: {exit: 2}, message: expect.stringContaining(`${bad}:3`)})
  })

  it('report --signer counts the laptop-signed session as failing verification and says whom it trusted', async () => {
    const outDir = await tempDir('dbgate-report-')
    const out = await captureCommand(() =>
      ReportCommand.run(['--bucket', bucketUrl, '--since', '2026-02-01', '--until', '2026-04-01', '--signer', 'gw-prod', '--out', outDir, '--json'], {root}),
    )
    expect(out.result.summary).toMatchObject({sessions: 2, logsFailingVerification: 1})
    const json = JSON.parse(await readFile(join(outDir, 'report.json'), 'utf8'))
    expect(json.sources.trustedSigners).toEqual(['gw-prod'])
    expect(await readFile(join(outDir, 'report.md'), 'utf8')).toContain('accepting only signatures by gw-prod')
  })
})
