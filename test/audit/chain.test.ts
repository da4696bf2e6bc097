import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {FileBucket} from '../../src/bucket/index.js'
import {sealEvent, sha256hex} from '../../src/audit/chain.js'
import {Recorder} from '../../src/audit/recorder.js'
import {fromPrivatePem, loadKeyRing, loadOrCreateInstallationKey, publishKey, type InstallationKey, type KeyRing} from '../../src/audit/signing.js'
import {verifySession, type ProblemCode} from '../../src/audit/verify.js'
import {generateKeyPairSync} from 'node:crypto'
import {stat} from 'node:fs/promises'
import {alice, mallory, removeTempDirs, stmt, tempDir} from './helpers.js'

let key: InstallationKey
let keys: KeyRing

beforeAll(async () => {
  const dir = await tempDir('dbgate-keys-')
  key = await loadOrCreateInstallationKey(join(dir, 'keys'))
  const bucket = new FileBucket(join(dir, 'bucket'))
  await publishKey(bucket, alice, key)
  keys = (await loadKeyRing(bucket)).keys
})
afterAll(removeTempDirs)

/** A real recorded session of five statements, as its spool file's bytes. */
async function recordSession(sessionId = 'sess-1', opts: {checkpointEvery?: number} = {}): Promise<string> {
  const spoolDir = await tempDir('dbgate-spool-')
  const rec = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir, checkpointEvery: opts.checkpointEvery ?? 0})
  const s = rec.startSession({sessionId, identity: alice, target: 'prod', database: 'app', dbUser: 'app_rw', client: {application: 'psql', address: '127.0.0.1:5000'}})
  s.statement(stmt(sessionId, 'select * from users where id = 42'))
  s.statement(stmt(sessionId, 'delete from users', {verdict: {action: 'reject', error: {severity: 'ERROR', code: '42501', message: 'DELETE without WHERE is denied'}}, outcome: 'rejected', rows: 0}))
  s.statement(stmt(sessionId, 'update accounts set plan = $1 where id = $2', {protocol: 'parse', params: ['***', '7']}))
  s.recordEvent('approval.requested', {approvalId: 'ap-1', reviewers: ['dba']})
  s.statement(stmt(sessionId, 'select 1', {outcome: 'error', error: {code: '57014', message: 'canceling statement'}}))
  await s.end('client-closed')
  return readFile(s.spoolPath, 'utf8')
}

const codes = (text: string | string[]) => verifySession(text, keys).problems.map((p) => p.code)
const lines = (text: string) => text.slice(0, -1).split('\n')
const join1 = (ls: string[]) => ls.join('\n') + '\n'

describe('hash chain and signatures', () => {
  it('accepts an untouched session and reports it ended and fully signed', async () => {
    const text = await recordSession()
    const r = verifySession(text, keys)
    expect(r.problems).toEqual([])
    expect(r).toMatchObject({ok: true, status: 'ended', sessionId: 'sess-1', lines: 7, signedThroughSeq: 7, keyIds: [key.keyId]})
  })

  it('chains each line to the previous line bytes, starting from the session id', async () => {
    const ls = lines(await recordSession())
    expect(JSON.parse(ls[0]!).prev).toBe(sha256hex('sess-1'))
    for (let i = 1; i < ls.length; i++) expect(JSON.parse(ls[i]!).prev).toBe(sha256hex(ls[i - 1]!))
  })

  it('detects an edited line, naming the line and its seq', async () => {
    const ls = lines(await recordSession())
    ls[1] = ls[1]!.replace('where id = 42', 'where id = 43')
    const r = verifySession(join1(ls), keys)
    expect(r.ok).toBe(false)
    expect(r.problems).toContainEqual(expect.objectContaining({line: 2, seq: 2, code: 'HASH_MISMATCH'}))
    expect(r.problems).toContainEqual(expect.objectContaining({line: 3, seq: 3, code: 'PREV_MISMATCH'}))
  })

  it('detects an edit whose hashes were all recomputed, through the signature', async () => {
    const ls = lines(await recordSession())
    // Rewrite line 2 and re-chain everything after it, as a careful forger would.
    const evs = ls.map((l) => JSON.parse(l) as {type: string; session: string; seq: number; ts: string; prev: string; data: {sql?: string}; sig?: unknown})
    evs[1]!.data.sql = 'select 1'
    let prev = sha256hex(ls[0]!)
    const forged = [ls[0]!]
    for (const ev of evs.slice(1)) {
      const line = sealEvent({type: ev.type, session: ev.session, seq: ev.seq, ts: ev.ts, prev, data: ev.data})
      forged.push(line)
      prev = sha256hex(line)
    }
    const r = verifySession(join1(forged), keys)
    expect(r.problems.map((p) => p.code)).toEqual(['SIGNATURE_MISSING'])
    expect(r.problems[0]).toMatchObject({line: 7, seq: 7})
  })

  it('detects a removed line', async () => {
    const ls = lines(await recordSession())
    ls.splice(2, 1)
    const r = verifySession(join1(ls), keys)
    expect(r.problems).toContainEqual(expect.objectContaining({line: 3, seq: 4, code: 'SEQ_GAP'}))
    expect(r.problems).toContainEqual(expect.objectContaining({line: 3, seq: 4, code: 'PREV_MISMATCH'}))
    expect(r.problems).toContainEqual(expect.objectContaining({code: 'TOTALS_MISMATCH'}))
  })

  it('detects a truncated file, whole lines or mid-line', async () => {
    const text = await recordSession()
    const ls = lines(text)
    const cut = verifySession(join1(ls.slice(0, 4)), keys)
    expect(cut.status).toBe('incomplete')
    expect(cut.problems.map((p) => p.code)).toEqual(['MISSING_END'])
    expect(cut.problems[0]!.message).toMatch(/seq 4/)

    const torn = verifySession(text.slice(0, text.length - 40), keys)
    expect(torn.problems.map((p) => p.code)).toEqual(['TRUNCATED_LINE', 'MISSING_END'])
    expect(torn.problems[0]!.line).toBe(7)
  })

  it('detects a reordered pair', async () => {
    const ls = lines(await recordSession())
    ;[ls[2], ls[3]] = [ls[3]!, ls[2]!]
    const r = verifySession(join1(ls), keys)
    expect(r.problems).toContainEqual(expect.objectContaining({line: 4, seq: 3, code: 'SEQ_OUT_OF_ORDER'}))
    expect(r.problems.filter((p) => p.code === 'PREV_MISMATCH').map((p) => p.line)).toEqual([3, 4, 5])
  })

  it('detects a forged signature', async () => {
    const ls = lines(await recordSession())
    const other = fromPrivatePem(generateKeyPairSync('ed25519').privateKey.export({type: 'pkcs8', format: 'pem'}).toString())
    // Re-sign the end event with another key but claim the published key id.
    const end = JSON.parse(ls[6]!) as {type: string; session: string; seq: number; ts: string; prev: string; data: unknown}
    ls[6] = sealEvent({...end}, {keyId: key.keyId, sign: (m) => other.sign(m)})
    const r = verifySession(join1(ls), keys)
    expect(r.problems).toEqual([expect.objectContaining({line: 7, seq: 7, code: 'SIGNATURE_INVALID'})])
  })

  it('detects an unknown key and a key bound to someone else', async () => {
    const ls = lines(await recordSession())
    const stranger = fromPrivatePem(generateKeyPairSync('ed25519').privateKey.export({type: 'pkcs8', format: 'pem'}).toString())
    const end = JSON.parse(ls[6]!) as {type: string; session: string; seq: number; ts: string; prev: string; data: unknown}
    ls[6] = sealEvent(end, stranger)
    expect(verifySession(join1(ls), keys).problems).toEqual([expect.objectContaining({line: 7, code: 'UNKNOWN_KEY'})])

    const dir = await tempDir()
    const bucket = new FileBucket(dir)
    await publishKey(bucket, mallory, stranger)
    const both = new Map([...keys, ...(await loadKeyRing(bucket)).keys])
    expect(verifySession(join1(ls), both).problems).toEqual([expect.objectContaining({line: 7, code: 'KEY_IDENTITY_MISMATCH'})])
  })

  it('detects a missing signature on the end event and events after the end', async () => {
    const ls = lines(await recordSession())
    const end = JSON.parse(ls[6]!) as {type: string; session: string; seq: number; ts: string; prev: string; data: unknown}
    const unsigned = sealEvent(end)
    const extra = sealEvent({type: 'statement', session: 'sess-1', seq: 8, ts: end.ts, prev: sha256hex(unsigned), data: {sql: 'drop table users', decision: 'allow', rows: 0, outcome: 'ok'}})
    const r = verifySession(join1([...ls.slice(0, 6), unsigned, extra]), keys)
    expect(r.problems.map((p) => [p.line, p.code])).toEqual([
      [7, 'SIGNATURE_MISSING'],
      [8, 'EVENTS_AFTER_END'],
    ])
  })

  it('does not accept a log spliced from another session', async () => {
    const a = lines(await recordSession('sess-a'))
    const b = lines(await recordSession('sess-b'))
    const problems: ProblemCode[] = codes(join1([...a.slice(0, 3), ...b.slice(3)]))
    expect(problems).toContain('SESSION_MISMATCH')
    expect(problems).toContain('PREV_MISMATCH')
  })

  it('signs checkpoints so an unfinished session is provable up to the last one', async () => {
    const ls = lines(await recordSession('sess-cp', {checkpointEvery: 2}))
    expect(ls.map((l) => JSON.parse(l).type)).toContain('checkpoint')
    const lastCheckpoint = ls.map((l) => JSON.parse(l).type).lastIndexOf('checkpoint')
    const r = verifySession(ls.slice(0, lastCheckpoint + 2), keys)
    expect(r.signedThroughSeq).toBe(lastCheckpoint + 1)
    expect(r.problems.map((p) => p.code)).toEqual(['MISSING_END'])
  })
})

describe('installation key', () => {
  it('is created once with mode 0600 and reused', async () => {
    const dir = join(await tempDir(), 'keys')
    const [a, b] = await Promise.all([loadOrCreateInstallationKey(dir), loadOrCreateInstallationKey(dir)])
    expect(a.keyId).toBe(b.keyId)
    expect((await stat(join(dir, 'installation-ed25519.pem'))).mode & 0o777).toBe(0o600)
    expect((await loadOrCreateInstallationKey(dir)).keyId).toBe(a.keyId)
  })

  it('publishes the key bound to the identity, keeping earlier bindings', async () => {
    const dir = await tempDir()
    const bucket = new FileBucket(dir)
    await publishKey(bucket, alice, key)
    await publishKey(bucket, alice, key)
    const doc = await publishKey(bucket, mallory, key)
    expect(doc.identity.subject).toBe('u-mallory')
    expect(doc.history.map((h) => h.subject)).toEqual(['u-alice'])
    const published = await readFile(join(dir, 'keys', `${key.keyId}.json`), 'utf8')
    expect(published).not.toContain(alice.tokenHash)
    expect(published).not.toContain('PRIVATE')
  })
})
