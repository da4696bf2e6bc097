/**
 * The group commit with many sessions: one `release` (the tunnel calls it before a chunk of replies
 * goes to a client) writes the events every session appended since the last one, whatever the order
 * and however often a session was recorded in between, so that a process killed right after it
 * loses nothing a client saw. What is on disk is read synchronously after the release: what a kill
 * at that instant would leave.
 */
import {readFileSync, writeFileSync} from 'node:fs'
import {rm} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {Recorder, type SessionRecorder} from '../../src/audit/recorder.js'
import {loadOrCreateInstallationKey, type InstallationKey} from '../../src/audit/signing.js'
import {alice, removeTempDirs, stmt, tempDir} from './helpers.js'

let key: InstallationKey

beforeAll(async () => {
  key = await loadOrCreateInstallationKey(join(await tempDir('dbgate-keys-'), 'keys'))
})
afterAll(removeTempDirs)

/** The statements' texts in a session's log as it is on disk now (complete lines only). */
function onDisk(spoolDir: string, sessionId: string): string[] {
  let text: string
  try {
    text = readFileSync(join(spoolDir, `${sessionId}.jsonl`), 'utf8')
  } catch {
    return []
  }
  const out: string[] = []
  for (const line of text.split('\n')) {
    if (!line.endsWith('}')) continue
    const e = JSON.parse(line) as {type: string; data: {sql?: string}}
    if (e.type === 'statement') out.push(e.data.sql!)
  }
  return out
}

async function open(spoolDir: string, onError?: (err: Error) => void): Promise<Recorder> {
  // No timer write during the test: only `release` puts events on disk.
  return Recorder.open({signer: key, dbgateVersion: 'test', spoolDir, flushIntervalMs: 60_000, ...(onError ? {onError} : {})})
}

function start(rec: Recorder, sessionId: string): SessionRecorder {
  return rec.startSession({sessionId, identity: alice, target: 'prod', database: 'app', dbUser: 'app_rw', client: {address: '127.0.0.1:1'}})
}

describe('release with many sessions', () => {
  it('writes every session recorded since the last release, turn after turn, whatever the order', async () => {
    const spoolDir = await tempDir('dbgate-spool-')
    const rec = await open(spoolDir)
    const ids = ['s-a', 's-b', 's-c', 's-d']
    const sessions = ids.map((id) => start(rec, id))
    const expected = new Map(ids.map((id) => [id, [] as string[]]))
    rec.release()
    // A fixed pseudo-random sequence: sessions recorded once, several times or not at all per turn.
    let seed = 7
    const next = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
    for (let turn = 0; turn < 60; turn++) {
      const count = Math.floor(next() * 6)
      for (let k = 0; k < count; k++) {
        const i = Math.floor(next() * ids.length)
        const sql = `select ${turn} as turn, ${k} as k`
        sessions[i]!.statement(stmt(ids[i]!, sql))
        expected.get(ids[i]!)!.push(sql)
      }
      if (turn === 0 && count > 0) {
        // The unprotected state: before the release, the timer alone has written nothing.
        const waiting = ids.find((id) => expected.get(id)!.length > 0)!
        expect(onDisk(spoolDir, waiting)).not.toContain(expected.get(waiting)!.at(-1))
      }
      rec.release()
      for (const id of ids) expect(onDisk(spoolDir, id), `${id} after turn ${turn}`).toEqual(expected.get(id))
    }
    await rec.close()
  })

  it('writes the other sessions when one cannot be written, and the failed one with its next release', async () => {
    const spoolDir = await tempDir('dbgate-spool-')
    const errors: Error[] = []
    const rec = await open(spoolDir, (e) => errors.push(e))
    const ok1 = start(rec, 's-ok1')
    const bad = start(rec, 's-bad')
    const ok2 = start(rec, 's-ok2')
    // A file already where the log would be created: its create-exclusive open fails.
    const blocker = join(spoolDir, 's-bad.jsonl')
    writeFileSync(blocker, '')
    ok1.statement(stmt('s-ok1', 'select 1'))
    bad.statement(stmt('s-bad', 'select 2'))
    ok2.statement(stmt('s-ok2', 'select 3'))
    rec.release()
    expect(errors.map((e) => e.message).join('\n')).toContain('s-bad.jsonl')
    expect(onDisk(spoolDir, 's-ok1')).toEqual(['select 1'])
    expect(onDisk(spoolDir, 's-ok2')).toEqual(['select 3'])
    expect(onDisk(spoolDir, 's-bad')).toEqual([])

    await rm(blocker)
    bad.statement(stmt('s-bad', 'select 4'))
    rec.release()
    // The events kept from the failed write come first, nothing lost or repeated.
    expect(onDisk(spoolDir, 's-bad')).toEqual(['select 2', 'select 4'])
    await rec.close()
  })

  it('writes an event recorded while a release runs (a failure report that records) in that release', async () => {
    const spoolDir = await tempDir('dbgate-spool-')
    let notes: SessionRecorder | undefined
    let reported = 0
    const rec = await open(spoolDir, () => {
      reported += 1
      notes?.recordEvent('note.write_failed', {n: reported})
    })
    // Written in this order: the notes' session before the failing one, whose report records into it again.
    const first = start(rec, 's-first')
    notes = start(rec, 's-notes')
    writeFileSync(join(spoolDir, 's-bad.jsonl'), '')
    const bad = start(rec, 's-bad')
    bad.statement(stmt('s-bad', 'select 1'))
    first.statement(stmt('s-first', 'select 2'))
    const last = start(rec, 's-last')
    last.statement(stmt('s-last', 'select 3'))
    rec.release()
    expect(reported).toBe(1)
    expect(onDisk(spoolDir, 's-first')).toEqual(['select 2'])
    expect(onDisk(spoolDir, 's-last')).toEqual(['select 3'])
    const notesLog = readFileSync(join(spoolDir, 's-notes.jsonl'), 'utf8')
    expect(notesLog).toContain('"note.write_failed"')
    await rm(join(spoolDir, 's-bad.jsonl'))
    await rec.close()
  })
})
