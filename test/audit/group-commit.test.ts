/**
 * The recording's group commit: the events of a chunk of replies are written, in one write per
 * session, before the tunnel hands the client the results they describe, so that a killed process
 * loses nothing a client saw. Each test first shows the loss on the unprotected path.
 */
import {spawn} from 'node:child_process'
import {readdirSync, readFileSync} from 'node:fs'
import {rm} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createRecordingHooks} from '../../src/audit/recording-hooks.js'
import {Recorder} from '../../src/audit/recorder.js'
import {loadOrCreateInstallationKey, type InstallationKey} from '../../src/audit/signing.js'
import type {ProxyHooks} from '../../src/proxy/seam.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {startTunnel} from '../helpers/tunnel.js'
import {transpileForChild} from './compile.js'
import {alice, removeTempDirs, tempDir} from './helpers.js'

let keyDir: string
let key: InstallationKey

beforeAll(async () => {
  keyDir = join(await tempDir('dbgate-keys-'), 'keys')
  key = await loadOrCreateInstallationKey(keyDir)
})
afterAll(removeTempDirs)

/** The statements' texts in a spool log as it is on disk now (complete lines only). */
function statementsOnDisk(spoolDir: string): string[] {
  const out: string[] = []
  for (const f of readdirSync(spoolDir).filter((n) => n.endsWith('.jsonl'))) {
    for (const line of readFileSync(join(spoolDir, f), 'utf8').split('\n')) {
      if (!line.endsWith('}')) continue
      const e = JSON.parse(line) as {type: string; data: {sql?: string}}
      if (e.type === 'statement') out.push(e.data.sql!)
    }
  }
  return out
}

/** Runs the child recorder until it has shown `until` statements' results, SIGKILLs it, and reports what was shown and what is on disk. */
async function killAfterShown(mode: 'release' | 'timer', until: number): Promise<{shown: number; onDisk: string[]}> {
  const libDir = await transpileForChild()
  const spoolDir = await tempDir('dbgate-spool-')
  const child = spawn(process.execPath, [join(import.meta.dirname, 'fixtures', 'release-child.mjs'), libDir, spoolDir, keyDir, `sess-${mode}`, mode], {stdio: ['ignore', 'pipe', 'pipe']})
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  let shown = -1
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      for (const m of d.toString().matchAll(/shown (\d+)/g)) shown = Math.max(shown, Number(m[1]))
      if (shown >= until) {
        // At once, in the same turn: nothing the child does after this line was seen.
        child.kill('SIGKILL')
        resolve()
      }
    })
    child.on('exit', (code, signal) => signal !== 'SIGKILL' && reject(new Error(`child exited early (${code}): ${stderr}`)))
  })
  await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r)))
  await rm(join(libDir, '..'), {recursive: true, force: true})
  return {shown, onDisk: statementsOnDisk(spoolDir)}
}

describe('group commit', () => {
  it('loses nothing a client saw when the process is SIGKILLed (and the timer alone would)', async () => {
    const unprotected = await killAfterShown('timer', 40)
    expect(unprotected.onDisk).not.toContain(`select ${unprotected.shown} as n`)

    const {shown, onDisk} = await killAfterShown('release', 40)
    expect(shown).toBeGreaterThanOrEqual(40)
    for (let i = 0; i <= shown; i++) expect(onDisk, `statement ${i} was shown`).toContain(`select ${i} as n`)
  })

  describe('through the tunnel', () => {
    let db: UpstreamInfo
    beforeAll(async () => {
      db = await createTestDatabase()
    })

    /** Runs `texts` through a recording tunnel and returns what the spool holds the moment each result arrives. */
    async function seenOnArrival(keepRelease: boolean, texts: string[]): Promise<string[][]> {
      const spoolDir = await tempDir('dbgate-spool-')
      const recorder = await Recorder.open({signer: key, dbgateVersion: 'test', spoolDir, flushIntervalMs: 60_000})
      const {beforeRelease, ...rest} = createRecordingHooks(recorder, {identity: alice, target: 'prod'})
      const hooks: ProxyHooks = keepRelease ? {...rest, beforeRelease} : rest
      const t = await startTunnel(db, hooks)
      const seen: string[][] = []
      try {
        const c = await t.client()
        for (const sql of texts) {
          await c.query(sql)
          // Synchronously, before anything else can run: what a kill at this instant would leave.
          seen.push(statementsOnDisk(spoolDir))
        }
        await c.end()
      } finally {
        await t.close()
      }
      return seen
    }

    it('writes each statement event before the client receives its result', async () => {
      const texts = ['select 1 as a', 'select 2 as b', "select 'x' as c"]
      const unprotected = await seenOnArrival(false, texts)
      expect(unprotected[0]).not.toContain('select 1 as a')
      const seen = await seenOnArrival(true, texts)
      texts.forEach((sql, i) => expect(seen[i], sql).toContain(sql))
    })
  })
})
