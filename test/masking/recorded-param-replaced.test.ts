/**
 * A prepared statement replaced behind the tunnel's back, in the recording. A Bind of a named
 * statement is recorded with the text that defined the name, and its values were proven by that
 * text. Code the analysis cannot see into (a DO block, a function) may DEALLOCATE the name and
 * PREPARE it again through dynamic SQL, which the server never reports: the Bind then runs
 * `insert into customers (…, full_name, …) values (…, $1, …)` while the recording reads
 * `select … where status = $1` and kept the name in clear. Attack: a SQL PREPARE and a protocol
 * Parse, replaced by a DO block and by a function, then bound with a name, through the tunnel.
 */
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import {sampleSchemaSql} from '../../src/demo/sample-data.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import type {RawClient} from '../helpers/raw-client.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {recordedStatements} from '../audit/helpers.js'

const NAME = 'Dora Quill'
const CLEAN = 'select id from orders where status = $1'
const INTO_NAMES = (id: number) => `insert into customers (id, full_name, email) values (${id}, $1, ''dora${id}@example.com'')`

describe('a prepared statement code replaced, in the recording', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel | undefined
  let statements: StatementData[]
  let landed: string[]

  const simple = async (raw: RawClient, text: string) => {
    raw.send(serialize.query(text))
    const replies = await raw.untilReady()
    expect(replies.map((m) => m.code), text).not.toContain('E')
  }
  const bindAndRun = async (raw: RawClient, name: string, value: string) => {
    raw.send(serialize.bind({statement: name, values: [value]}), serialize.execute({}), serialize.sync())
    const replies = await raw.untilReady()
    expect(replies.map((m) => m.code), name).not.toContain('E')
  }

  beforeAll(async () => {
    db = await createTestDatabase('recreplaced')
    await withClient(db.url, async (c) => {
      await c.query(sampleSchemaSql())
      await c.query(`create function prepare_again(name text, body text) returns void language plpgsql as $$
        begin execute format('deallocate %I', name); execute format('prepare %I(text) as %s', name, body); end $$`)
    })
    const bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-recreplaced-'))}`
    // Masking holds on its own, with no guardrail in front of it (a DO block is allowed).
    t = await openPipelineTunnel(db, 'policy: none', {top: `bucket: ${bucketUrl}`})

    // SQL PREPARE, replaced by a DO block.
    const a = await t.raw()
    await simple(a, `prepare p_do(text) as ${CLEAN}`)
    await simple(a, `do $$ begin execute 'deallocate p_do'; execute 'prepare p_do(text) as ${INTO_NAMES(991)}'; end $$`)
    await simple(a, 'select 1')
    await bindAndRun(a, 'p_do', NAME)
    // Prepared again after the code ran: its text is what runs, and proves its values again.
    await simple(a, `prepare p_after(text) as ${CLEAN}`)
    await bindAndRun(a, 'p_after', 'paid')

    // A protocol Parse of a named statement (one namespace with PREPARE), replaced by a function.
    const b = await t.raw()
    b.send(serialize.parse({name: 's_fn', text: CLEAN, types: [25]}), serialize.sync())
    await b.untilReady()
    await simple(b, `select prepare_again('s_fn', '${INTO_NAMES(992)}')`)
    await simple(b, 'select 1')
    await bindAndRun(b, 's_fn', NAME)

    // SQL PREPARE, replaced by a function.
    const c = await t.raw()
    await simple(c, `prepare p_fn(text) as ${CLEAN}`)
    await simple(c, `select prepare_again('p_fn', '${INTO_NAMES(993)}')`)
    await bindAndRun(c, 'p_fn', NAME)

    await t.close()
    t = undefined
    statements = await recordedStatements(bucketUrl)
    landed = await withClient(db.url, async (cl) => (await cl.query<{full_name: string}>('select full_name from customers where id in (991, 992, 993) order by id')).rows.map((r) => r.full_name))
  })
  afterAll(async () => {
    await t?.close()
  })

  it('masks the values of a name that code may have prepared again', () => {
    // The attack did what it meant to: each name ran the INSERT.
    expect(landed).toEqual([NAME, NAME, NAME])
    const bound = statements.filter((s) => s.params && s.commandTags?.[0]?.startsWith('INSERT'))
    expect(bound).toHaveLength(3)
    for (const s of bound) expect(s.params, s.statementName).toEqual(['[masked]'])
    expect(JSON.stringify(statements.map((s) => s.params ?? null))).not.toContain('Quill')
  })

  it('proves again a name prepared after the code ran', () => {
    const after = statements.find((s) => s.params && s.sql.startsWith('prepare p_after'))
    expect(after?.params).toEqual(['paid'])
  })
})
