/**
 * What masking tells the recording, through the tunnel exactly as `dbgate connect` builds it: how
 * many values each statement had replaced, for result rows and COPY alike. `dbgate report` sums
 * these into "values masked".
 */
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {pipeline} from 'node:stream/promises'
import {Writable} from 'node:stream'
import {to as copyTo} from 'pg-copy-streams'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import {SessionReader} from '../../src/audit/read.js'
import {openBucket} from '../../src/bucket/index.js'
import {openPipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'

describe('masked values in the recording', () => {
  let db: UpstreamInfo
  let statements: StatementData[]

  beforeAll(async () => {
    db = await createTestDatabase('maskcount')
    await withClient(db.url, (c) =>
      c.query(`create table members (id int primary key, email text, nickname text, note text);
        insert into members values
          (1, 'ann@example.com', 'ann', 'call me at ann.private@example.org'),
          (2, 'ben@example.com', 'ben', 'nothing to see'),
          (3, null, 'cy', null)`),
    )
    const bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-maskcount-'))}`
    const t = await openPipelineTunnel(db, '', {top: `bucket: ${bucketUrl}`})
    const c = await t.client()
    await c.query('select id, email, nickname, note from members order by id')
    await c.query('select id, nickname from members')
    let copied = ''
    await pipeline(
      c.query(copyTo('copy (select id, email, note from members order by id) to stdout')),
      new Writable({
        write(chunk: Buffer, _enc, done) {
          copied += chunk.toString()
          done()
        },
      }),
    )
    expect(copied).not.toContain('ann@example.com')
    await t.close()
    const reader = new SessionReader(openBucket(bucketUrl), mkdtempSync(path.join(tmpdir(), 'dbgate-cache-')))
    const [session] = await reader.list()
    statements = (await reader.loadSummary(session!)).events.filter((e) => e.type === 'statement').map((e) => e.data as StatementData)
  })
  afterAll(() => undefined)

  it('counts each replaced value: marked columns and what the scanner found, nulls not', () => {
    const select = statements.find((s) => s.sql.startsWith('select id, email'))!
    // Two e-mails in the e-mail column, one e-mail inside the free-text note.
    expect(select).toMatchObject({rows: 3, maskedValues: 3})
    expect(select.maskedColumns.length).toBeGreaterThan(0)
  })

  it('records zero for a result with nothing sensitive', () => {
    expect(statements.find((s) => s.sql === 'select id, nickname from members')).toMatchObject({maskedValues: 0, maskedColumns: []})
  })

  it('counts COPY fields the same way', () => {
    expect(statements.find((s) => s.sql.startsWith('copy'))).toMatchObject({maskedValues: 3})
  })
})
