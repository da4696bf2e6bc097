/**
 * The spool is where a tunnel keeps session logs until they are shipped, and the shipper trusts
 * what it finds there: a log whose writer is gone is sealed with this installation's key and
 * shipped as the person's, then deleted. With DBGATE_SPOOL_DIR pointed at a directory other users
 * can write to (or replace), any of them could plant a log there (or a link to any file of the
 * person's) and have it signed, shipped and removed. Such a directory is refused, by the tunnel and
 * by the shipper, with the reason; nothing in it is read, shipped or removed.
 */
import {spawnSync} from 'node:child_process'
import {chmod, cp, mkdir, readdir, symlink, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {Recorder} from '../../src/audit/recorder.js'
import {shipPending} from '../../src/audit/shipper.js'
import {loadOrCreateInstallationKey, publishKey, type InstallationKey} from '../../src/audit/signing.js'
import {FileBucket} from '../../src/bucket/index.js'
import {spawnConnect} from '../helpers/connect-process.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {alice, removeTempDirs, stmt, tempDir} from './helpers.js'

let key: InstallationKey
let db: UpstreamInfo
beforeAll(async () => {
  key = await loadOrCreateInstallationKey(join(await tempDir('dbgate-keys-'), 'keys'))
  db = await createTestDatabase('shared_spool')
})
afterAll(() => removeTempDirs())

/** A log left by a writer that is gone, as the shipper finds one: ended by no one, its lock naming a dead process. */
async function orphanedLog(dir: string, sessionId: string): Promise<void> {
  const rec = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir: dir, checkpointEvery: 0})
  const s = rec.startSession({sessionId, identity: alice, target: 'prod', database: 'app', dbUser: 'app_rw', client: {address: '127.0.0.1:1'}, startedAt: new Date('2026-03-01T10:00:00Z')})
  s.statement(stmt(sessionId, 'select 1'))
  await s.flush()
  const dead = spawnSync(process.execPath, ['-e', '']).pid!
  await writeFile(join(dir, `${sessionId}.lock`), JSON.stringify({pid: dead, host: hostname(), createdAt: new Date().toISOString()}))
}

/** Spool directories others may change, each made from a fresh private one. */
const shared: Array<[string, (base: string) => Promise<string>]> = [
  ['writable by everyone', async (b) => (await chmod(b, 0o777), b)],
  ['sticky and writable by everyone, as /tmp is', async (b) => (await chmod(b, 0o1777), b)],
  ['writable by its group', async (b) => (await chmod(b, 0o770), b)],
  ['private, under a directory everyone may write to', async (b) => {
    await chmod(b, 0o777)
    const d = join(b, 'spool')
    await mkdir(d, {mode: 0o700})
    return d
  }],
  ['a link to a directory everyone may write to', async (b) => {
    const open = join(b, 'open')
    await mkdir(open)
    await chmod(open, 0o777)
    const link = join(b, 'spool')
    await symlink(open, link)
    return link
  }],
]

describe('a spool directory other users could write to', () => {
  for (const [what, make] of shared) {
    it(`dbgate connect refuses to start, naming the directory and why (${what})`, async () => {
      const dir = await make(await tempDir('dbgate-shared-spool-'))
      const started = await spawnConnect(db, {env: {DBGATE_SPOOL_DIR: dir}}).then((t) => t.stop().then(() => 'started'), (e: Error) => e.message)
      expect(started).toContain(`refusing to record sessions in the spool directory ${dir}:`)
      expect(started).toMatch(/other users may write to|belongs to another user/)
      expect(started).toContain('Set DBGATE_SPOOL_DIR to a directory only you can write (mode 0700)')
    })

    it(`the shipper signs, ships and removes nothing found there (${what})`, async () => {
      const base = await tempDir('dbgate-shared-spool-')
      // What another user would leave: built in a private directory, then put in the shared one.
      const made = await tempDir('dbgate-planted-')
      await orphanedLog(made, 'planted-1')
      const dir = await make(base)
      for (const f of await readdir(made)) await cp(join(made, f), join(dir, f))
      const bucket = new FileBucket(await tempDir('dbgate-bucket-'))
      await publishKey(bucket, alice, key)
      const shipped = await shipPending({bucket, signer: key, spoolDir: dir}).then((r) => JSON.stringify(r), (e: Error) => e.message)
      expect(shipped).toContain(`refusing to record sessions in the spool directory ${dir}:`)
      const objects: string[] = []
      for await (const o of bucket.list('')) objects.push(o.key)
      expect(objects.filter((k) => !k.startsWith('keys/'))).toEqual([])
      expect((await readdir(dir)).sort()).toEqual(['planted-1.jsonl', 'planted-1.lock'])
    })
  }

  it('records and ships from a directory only this user can write', async () => {
    const dir = join(await tempDir('dbgate-private-spool-'), 'spool')
    const t = await spawnConnect(db, {env: {DBGATE_SPOOL_DIR: dir}})
    await t.stop()
    await orphanedLog(dir, 'own-1')
    const bucket = new FileBucket(await tempDir('dbgate-bucket-'))
    await publishKey(bucket, alice, key)
    const report = await shipPending({bucket, signer: key, spoolDir: dir})
    expect(report.shipped.map((s) => s.sessionId)).toContain('own-1')
  })
})
