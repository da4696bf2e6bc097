import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {recordedStatements} from './helpers.js'

/**
 * A text over `tunnel.maxStatementSize` is refused and never runs, yet it was recorded whole: a
 * client may send up to the message limit (1 GiB), and one such text made the session's log larger
 * than the tools that read logs accept (256 MiB), so list, search, replay, verify and report could
 * only call the whole session unreadable, every other statement in it included. Its beginning and
 * its length are kept now; a text that ran is kept whole.
 */
describe('texts refused for their size, in the recording', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel | undefined
  let statements: StatementData[]
  const big = `select 1 /* ${'x'.repeat(3 * 1024 * 1024)} */ as tail_marker`
  const allowed = `select 2 /* ${'y'.repeat(200 * 1024)} */ as ran`

  beforeAll(async () => {
    db = await createTestDatabase('refusedsize')
    const bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-refusedsize-'))}`
    t = await openPipelineTunnel(db, '', {top: `bucket: ${bucketUrl}`})
    const c = await t.client()
    const refused = (await c.query(big).catch((e: Error) => e)) as Error
    expect(refused).toBeInstanceOf(Error)
    expect(refused.message).toMatch(/statement denied by rule/)
    expect((refused as Error & {detail?: string}).detail).toMatch(/statement text is \d+ bytes, over the 1048576-byte limit/)
    expect((await c.query(allowed)).rows).toEqual([{ran: 2}])
    await c.query('select 3 as after')
    await t.close()
    t = undefined
    statements = await recordedStatements(bucketUrl)
  })
  afterAll(async () => {
    await t?.close()
  })

  it('keeps the beginning and the length of a refused text, and whole the texts that ran', () => {
    const refused = statements.find((s) => s.sql.startsWith('select 1 /*'))!
    expect(refused.decision).toBe('deny')
    expect(refused.sql.length).toBeLessThan(70 * 1024)
    expect(refused.sql).toMatch(new RegExp(`…\\[cut, ${Buffer.byteLength(big)} bytes in all\\]$`))
    expect(refused.sql).not.toContain('tail_marker')
    expect(statements.find((s) => s.sql.startsWith('select 2 /*'))!.sql).toBe(allowed)
    expect(statements.some((s) => s.sql === 'select 3 as after')).toBe(true)
  })
})
