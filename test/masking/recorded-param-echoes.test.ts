/**
 * A bound value quoted back by the error it caused, in the recording, through the tunnel exactly
 * as `dbgate connect` builds it. A failed statement's parameters are recorded masked (the value
 * never reached the clean column that would prove it clean), but the server's message quotes the
 * value it could not take (`invalid input syntax for type integer: "Dora Quill"`, `value
 * "90012345678" is out of range`, an enum's `invalid input value`), and a statement that reads
 * nothing sensitive had its message recorded as the server wrote it. Attack: bind a name where
 * the server refuses it, by type, by cast, in a LIMIT, in an array, in an INSERT or an UPDATE.
 */
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import {sampleSchemaSql} from '../../src/demo/sample-data.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {recordedStatements} from '../audit/helpers.js'

const NAME = 'Dora Quill'

/** Failed statements whose error message quotes a bound value: each with the values bound, and the one quoted. */
const ECHOES: {sql: string; values: string[]; quoted: string}[] = [
  {sql: 'select id from orders where id = $1', values: [NAME], quoted: NAME},
  {sql: 'select id from orders where placed_at > $1', values: [NAME], quoted: NAME},
  {sql: 'select id from orders limit $1', values: [NAME], quoted: NAME},
  {sql: 'select id from orders where id = $1::int', values: [NAME], quoted: NAME},
  {sql: 'update orders set total_cents = $1 where id = 1', values: [NAME], quoted: NAME},
  {sql: 'insert into orders (id, customer_id, status, total_cents, placed_at) values (1, 1, $1, $2, now())', values: ['paid', NAME], quoted: NAME},
  {sql: 'select id from orders where total_cents = $1', values: ['90012345678'], quoted: '90012345678'},
  {sql: 'select id from orders where customer_id = any($1)', values: [`{"${NAME}"}`], quoted: NAME},
  {sql: 'select id from moods where mood = $1', values: [NAME], quoted: NAME},
]

/** The same, failing while the statement runs. */
const RUNNING: typeof ECHOES = [
  {sql: 'select id from orders where id = $1::text::int', values: [NAME], quoted: NAME},
  {sql: 'select id from orders where status = $1 and total_cents = $2::text::int', values: ['paid', NAME], quoted: NAME},
  {sql: 'update orders set total_cents = $1::text::int where id = 1', values: ['90012345678'], quoted: '90012345678'},
]

describe('errors that quote a bound value, in the recording', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel | undefined
  let statements: StatementData[]

  beforeAll(async () => {
    db = await createTestDatabase('recechoes')
    await withClient(db.url, async (c) => {
      await c.query(sampleSchemaSql())
      await c.query(`create type mood as enum ('calm', 'busy');
        create table moods (id int primary key, mood mood)`)
    })
    const bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-recechoes-'))}`
    // Masking holds on its own, with no guardrail in front of it.
    t = await openPipelineTunnel(db, 'policy: none', {top: `bucket: ${bucketUrl}`})
    const c = await t.client()
    for (const k of ECHOES) {
      const e = await c.query(k.sql, k.values).then(() => undefined, (err: Error) => err)
      expect(e?.message, k.sql).toMatch(/^(invalid input|value ")/)
    }
    // A generic plan converts the value while the statement runs, not when it is bound: the error
    // is the statement's own, which reads nothing sensitive, so the client is shown its value.
    const generic = await t.client()
    await generic.query('set plan_cache_mode = force_generic_plan')
    for (const k of RUNNING) {
      const e = await generic.query(k.sql, k.values).then(() => undefined, (err: Error) => err)
      expect(e?.message, k.sql).toContain(k.quoted)
    }
    await t.close()
    t = undefined
    statements = await recordedStatements(bucketUrl)
  })
  afterAll(async () => {
    await t?.close()
  })

  it('masks the value in the recorded error as it masks the parameter', () => {
    for (const k of [...ECHOES, ...RUNNING]) {
      const s = statements.find((x) => x.sql === k.sql)
      expect(s?.outcome, k.sql).toBe('error')
      expect(s?.params, k.sql).not.toContain(k.quoted)
      // What the message says stays readable: only the quoted value goes.
      expect(s?.error?.message, k.sql).toMatch(/^(invalid input|value ")/)
      expect(s?.error?.message, k.sql).toContain('[masked]')
      expect(s?.error?.message, k.sql).not.toContain(k.quoted)
      expect(s?.error?.message, k.sql).not.toContain('Quill')
    }
  })
})
