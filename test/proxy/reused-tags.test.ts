/**
 * The tunnel reuses the string of the connection's last CommandComplete tag when the next one has
 * the same bytes (docs/performance-history.md, "Eighth round"), and the stages that read tags keep their
 * last answer per tag string. Tags that differ in one byte, or only in length, must each be read
 * as they are: the statement events carry each statement's own tags and row counts, and a DDL
 * tag after a run of equal-length SELECT tags still makes masking re-read its catalog.
 */
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {ProxyHooks, StatementEvent} from '../../src/proxy/seam.js'
import {shouldRefresh} from '../../src/masking/runtime.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'
import {waitFor} from '../helpers/wait.js'

describe('CommandComplete tags read once per connection', () => {
  let db: UpstreamInfo
  let t: TestTunnel
  const events: StatementEvent[] = []

  beforeAll(async () => {
    db = await createTestDatabase('reusedtags')
    await withClient(db.url, (c) => c.query('create table tag_rows (id int)'))
    const hooks: ProxyHooks = {onStatement: (e) => events.push(e)}
    t = await startTunnel(db, hooks)
  })
  afterAll(() => t?.close())

  it('gives every statement its own tags and row counts, however alike their bytes', async () => {
    const c = await t.client()
    const texts = [
      'select 1',
      'select 2',
      'select g from generate_series(1, 3) g',
      'select g from generate_series(1, 3) g',
      'select g from generate_series(1, 4) g',
      'insert into tag_rows values (1)',
      'insert into tag_rows values (2), (3)',
      'update tag_rows set id = id',
      'delete from tag_rows where id = 1',
      'create table tag_other (id int)',
      'select 1',
      'drop table tag_other',
      'select g from generate_series(1, 12) g',
    ]
    for (const sql of texts) await c.query(sql)
    await waitFor(() => events.filter((e) => texts.includes(e.sql)).length >= texts.length, 'every statement reported')
    const seen = events.filter((e) => texts.includes(e.sql)).map((e) => [e.sql, e.commandTags.join('|'), e.rows])
    expect(seen).toEqual([
      ['select 1', 'SELECT 1', 1],
      ['select 2', 'SELECT 1', 1],
      ['select g from generate_series(1, 3) g', 'SELECT 3', 3],
      ['select g from generate_series(1, 3) g', 'SELECT 3', 3],
      ['select g from generate_series(1, 4) g', 'SELECT 4', 4],
      ['insert into tag_rows values (1)', 'INSERT 0 1', 1],
      ['insert into tag_rows values (2), (3)', 'INSERT 0 2', 2],
      ['update tag_rows set id = id', 'UPDATE 3', 3],
      ['delete from tag_rows where id = 1', 'DELETE 1', 1],
      ['create table tag_other (id int)', 'CREATE TABLE', 0],
      ['select 1', 'SELECT 1', 1],
      ['drop table tag_other', 'DROP TABLE', 0],
      ['select g from generate_series(1, 12) g', 'SELECT 12', 12],
    ])
    // Masking's re-read follows each event's own tags and text, not the answer for the one before.
    expect(events.filter((e) => texts.includes(e.sql)).map(shouldRefresh)).toEqual([false, false, false, false, false, false, false, false, false, true, false, true, false])
  })

  it('re-reads after a statement whose text creates a table, though its tag is a SELECT like the one before', () => {
    const ok = (sql: string, tag: string) => shouldRefresh({sql, commandTags: [tag], outcome: 'ok'})
    const create = 'create table t2 as select 1'
    expect(ok('select 1', 'SELECT 1')).toBe(false)
    expect(ok(create, 'SELECT 1')).toBe(true)
    expect(ok('select 1', 'SELECT 1')).toBe(false)
    expect(ok(create, 'SELECT 1')).toBe(true)
    expect(ok(create, 'SELECT 1')).toBe(true)
    expect(shouldRefresh({sql: create, commandTags: ['SELECT 1'], outcome: 'error'})).toBe(false)
  })
})
