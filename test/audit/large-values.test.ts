/**
 * One large value through the tunnel. A 300 MB text value took `dbgate connect` (and a gateway,
 * for any signed-in person, per session) to 1.65 GB: the recording's preview kept the whole value
 * as a string and wrote it into a 300 MB log line (shipped and kept in the bucket), the server's
 * row was assembled by doubling (the last two sizes held at once), and the row and the tag after it
 * were copied into one buffer to be written. A bind parameter went into the log whole as well.
 *
 * Now the log keeps the first 2,048 bytes of any value (preview cell or parameter), masked, with
 * how long the whole was; the client still gets every byte, and the tunnel holds about one copy.
 */
import {readdirSync, readFileSync, statSync} from 'node:fs'
import {join} from 'node:path'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseEvents} from '../../src/audit/read.js'
import type {StatementData} from '../../src/audit/events.js'
import {spawnConnect, type ConnectProcess} from '../helpers/connect-process.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'

const MB = 1024 * 1024
const BIG = 64 * MB

/** Every statement event in the spool so far. */
function statements(spoolDir: string): StatementData[] {
  const out: StatementData[] = []
  for (const f of readdirSync(spoolDir).filter((f) => f.endsWith('.jsonl'))) {
    for (const e of parseEvents(readFileSync(join(spoolDir, f), 'utf8'))) if (e.type === 'statement') out.push(e.data as StatementData)
  }
  return out
}

function logBytes(spoolDir: string): number {
  return readdirSync(spoolDir)
    .filter((f) => f.endsWith('.jsonl'))
    .reduce((n, f) => n + statSync(join(spoolDir, f)).size, 0)
}

describe('a large value through the tunnel', () => {
  let db: UpstreamInfo
  let tunnel: ConnectProcess
  let c: pg.Client

  beforeAll(async () => {
    db = await createTestDatabase('large_values')
    await withClient(db.url, (c) => c.query(`create table docs (id int, body text, email text); insert into docs values (1, repeat('b', ${BIG}), 'carol.large@example.org')`))
    tunnel = await spawnConnect(db)
    c = new pg.Client({connectionString: tunnel.url})
    await c.connect()
  }, 60_000)

  afterAll(async () => {
    await c?.end().catch(() => {})
    await tunnel?.stop()
  })

  it('reaches the client whole, in clear and beside a masked value, while the tunnel holds about one copy of it', async () => {
    const before = tunnel.peakRss()
    const clean = await c.query(`select repeat('a', ${BIG}) as v`)
    expect(clean.rows[0].v).toHaveLength(BIG)
    expect(clean.rows[0].v.slice(-3)).toBe('aaa')
    const mixed = await c.query('select body, email from docs where id = 1')
    expect(mixed.rows[0].body).toHaveLength(BIG)
    expect(mixed.rows[0].email).not.toContain('carol.large')
    // One copy of the value for the row being read, one for a row whose masked value was rewritten,
    // and room for the collector: before, the first query alone took over five copies.
    expect(tunnel.peakRss() - before).toBeLessThan(3 * BIG)
  }, 120_000)

  it('is recorded as its first 2,048 bytes and its length, masked, in a log line of kilobytes', async () => {
    const rows = statements(tunnel.spoolDir).filter((s) => s.sql.startsWith('select repeat') || s.sql.startsWith('select body'))
    expect(rows).toHaveLength(2)
    for (const s of rows) {
      const cell = s.preview!.rows[0]![0]!
      expect(cell).toMatch(new RegExp(`^[ab]{2048}…\\[cut, ${BIG} bytes in all\\]$`))
    }
    expect(JSON.stringify(rows)).not.toContain('carol.large')
    expect(logBytes(tunnel.spoolDir)).toBeLessThan(MB)
  })

  it('cuts a long bind parameter after masking it, so a value the cut falls inside is masked whole, and runs it whole', async () => {
    // Sensitive values that straddle the 2,048th byte, and a multi-byte character right at it.
    const values = [
      `${'x'.repeat(2040)} dora.cut@example.org ${'y'.repeat(MB)}`,
      `${'x'.repeat(2044)} 4111 1111 1111 1111 ${'y'.repeat(MB)}`,
      `${'x'.repeat(2047)}é${'z'.repeat(MB)}`,
    ]
    for (const [i, v] of values.entries()) {
      const r = await c.query(`select length($1::text) as n /* long param ${i} */`, [v])
      expect(r.rows[0].n).toBe(v.length)
    }
    const recorded = statements(tunnel.spoolDir).filter((s) => s.sql.includes('long param'))
    expect(recorded).toHaveLength(3)
    for (const [i, s] of recorded.entries()) {
      const p = s.params![0]!
      expect(p).toMatch(new RegExp(`…\\[cut, ${Buffer.byteLength(values[i]!)} bytes in all\\]$`))
      expect(p.length).toBeLessThan(2200)
      expect(p).not.toContain('\uFFFD')
    }
    expect(recorded[0]!.params![0]).not.toMatch(/dora|\.cut@/)
    expect(recorded[1]!.params![0]).not.toMatch(/4111 1111/)
  }, 60_000)
})
