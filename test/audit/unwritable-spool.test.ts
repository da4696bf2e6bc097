/**
 * The log is written before a client sees a result, so that a tunnel killed at any moment has lost
 * nothing a client saw. When that write failed (a full disk, a quota, a file-size limit, an I/O
 * error), the tunnel used to report it and release the replies anyway: the client read results
 * whose record lived only in memory, and a kill then left no trace of them. Now the replies are
 * withheld and that one connection ends with a clear error; the tunnel and its other sessions go on.
 *
 * The failure is real: `dbgate connect` runs under a file-size limit (`ulimit -f`), so the
 * kernel refuses the spool's write (EFBIG) once the session's log reaches it.
 */
import {readdirSync, readFileSync} from 'node:fs'
import {mkdtemp, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseEvents} from '../../src/audit/read.js'
import type {StatementData} from '../../src/audit/events.js'
import {spawnConnect, type ConnectProcess} from '../helpers/connect-process.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'

/** KiB a file of the tunnel process may grow to: a few dozen statements' events. */
const FILE_LIMIT_KIB = 48

/** The statement texts in a session's log, as the disk holds it now (a partly written last line is not an event). */
function statementsOnDisk(spoolDir: string): string[] {
  const texts: string[] = []
  for (const f of readdirSync(spoolDir).filter((f) => f.endsWith('.jsonl'))) {
    const text = readFileSync(join(spoolDir, f), 'utf8')
    const whole = text.slice(0, text.lastIndexOf('\n') + 1)
    for (const e of parseEvents(whole)) if (e.type === 'statement') texts.push((e.data as StatementData).sql)
  }
  return texts
}

describe('an audit log that cannot be written', () => {
  let db: UpstreamInfo
  let tunnel: ConnectProcess
  let spoolDir: string

  beforeAll(async () => {
    db = await createTestDatabase('unwritable_spool')
    await withClient(db.url, (c) => c.query("create table people (email text); insert into people values ('ann.example@example.org')"))
    tunnel = await spawnConnect(db, {limitFileKib: FILE_LIMIT_KIB})
    spoolDir = tunnel.spoolDir
  }, 60_000)

  afterAll(async () => {
    await tunnel?.stop()
  })

  /** Runs statements of every kind until the tunnel refuses one; returns what the client saw. */
  async function runUntilRefused(c: pg.Client, tag: string): Promise<{shown: string[]; refused: string; error: pg.DatabaseError}> {
    const shown: string[] = []
    // Reads, writes, extended-protocol statements with values, and rows from the table: each a
    // result whose record must be on disk before the client has it.
    const kinds = [
      (i: number) => ({text: `select '${tag}-${i}' as n, email from people`}),
      (i: number) => ({text: `update people set email = email where email <> '${tag}-${i}'`}),
      (i: number) => ({text: `select $1::text as n /* ${tag}-${i} */`, values: [`${tag}-${i}`]}),
    ]
    for (let i = 0; i < 2000; i++) {
      const q = kinds[i % kinds.length]!(i)
      try {
        await c.query(q)
      } catch (error) {
        return {shown, refused: q.text, error: error as pg.DatabaseError}
      }
      shown.push(q.text)
    }
    throw new Error(`2000 statements ran with a ${FILE_LIMIT_KIB} KiB limit on the log: its failed writes were not refused`)
  }

  it('withholds the replies and ends the connection; every result the client saw is on disk', async () => {
    const c = new pg.Client({connectionString: tunnel.url})
    c.on('error', () => {})
    await c.connect()
    const {shown, refused, error} = await runUntilRefused(c, 'full')
    expect(shown.length).toBeGreaterThan(5)
    expect(error.severity).toBe('FATAL')
    expect(error.code).toBe('58030')
    expect(error.message).toContain("the session's audit log could not be written (EFBIG)")
    expect(error.hint).toContain('spool directory')
    // No secret path of the tunnel's machine in what a client reads; the operator's log has it.
    expect(error.message).not.toContain(spoolDir)
    expect(tunnel.stderr()).toContain(spoolDir)
    expect(tunnel.stderr()).toMatch(/EFBIG|too large/i)

    const onDisk = statementsOnDisk(spoolDir)
    for (const text of shown) expect(onDisk, `${text} was shown to the client`).toContain(text)
    expect(onDisk).not.toContain(refused)
    // The connection is gone: nothing more runs on it.
    await expect(c.query('select 1')).rejects.toThrow()
    await c.end().catch(() => {})
  }, 60_000)

  it('leaves the tunnel serving: a new session, with a log of its own, works', async () => {
    const c = new pg.Client({connectionString: tunnel.url})
    await c.connect()
    const r = await c.query("select 'after' as n")
    expect(r.rows).toEqual([{n: 'after'}])
    await c.end()
    expect(statementsOnDisk(spoolDir)).toContain("select 'after' as n")
    expect(tunnel.child.exitCode).toBeNull()
  }, 60_000)
})

describe('a spool directory that cannot be made', () => {
  it('refuses each session before it starts, saying why, and the tunnel stays up', async () => {
    const db = await createTestDatabase('unmade_spool')
    const home = await mkdtemp(join(tmpdir(), 'dbgate-unmade-'))
    // Where the spool should be, a file: no log can be opened there.
    await writeFile(join(home, 'state'), 'not a directory')
    const tunnel = await spawnConnect(db, {env: {DBGATE_SPOOL_DIR: join(home, 'state', 'spool')}})
    try {
      for (let i = 0; i < 2; i++) {
        const c = new pg.Client({connectionString: tunnel.url})
        c.on('error', () => {})
        const error = (await c.connect().then(() => c.query('select 1')).catch((e: pg.DatabaseError) => e)) as pg.DatabaseError
        expect(error).toBeInstanceOf(Error)
        expect(error.code).toBe('58030')
        expect(error.message).toContain("the session's audit log could not be written (ENOTDIR)")
        await c.end().catch(() => {})
      }
      expect(tunnel.child.exitCode).toBeNull()
      expect(tunnel.stderr()).toContain(join(home, 'state', 'spool'))
    } finally {
      await tunnel.stop()
    }
  }, 60_000)
})
