/**
 * A value converted to a type whose input runs user code, in the recording. The server converts
 * each bound value to its parameter's type at Bind, and a domain's CHECK runs with it there,
 * before the value reaches any place the text gives it: the function may copy it anywhere (here
 * into `kept_names.full_name`). The recording proved such a value clean by its place alone when the
 * type came from the Parse's declared parameter types or a PREPARE's own (`prepare p(kept_text)`),
 * or from a column of a composite type one of whose fields is such a domain (or of a range over
 * one, whose input converts each bound). Attack: each of
 * these, through the tunnel, with the value compared with a clean column.
 */
import {mkdtempSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {StatementData} from '../../src/audit/events.js'
import {sampleSchemaSql} from '../../src/demo/sample-data.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {recordedStatements} from '../audit/helpers.js'

const NAME = 'Dora Quill'
const CLEAN = 'select id from orders where status = $1'

describe('values converted to a type that runs code, in the recording', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel | undefined
  let statements: StatementData[]
  let landed: string[]
  const oids: Record<string, number> = {}

  beforeAll(async () => {
    db = await createTestDatabase('rectypes')
    await withClient(db.url, async (c) => {
      await c.query(sampleSchemaSql())
      await c.query(`create table kept_names (n serial primary key, full_name text);
        create function keep_name(v text) returns boolean language plpgsql as $$
          begin insert into public.kept_names (full_name) values (v); return true; end $$;
        create domain kept_text as text check (keep_name(value));
        create type kept_pair as (label kept_text, n int);
        create table pairs (id int primary key, pair kept_pair);
        create type kept_range as range (subtype = kept_pair);
        create table spans (id int primary key, span kept_range)`)
      for (const name of ['kept_text', '_kept_text', 'kept_pair', 'kept_range']) oids[name] = Number((await c.query<{o: string}>(`select '${name}'::regtype::oid as o`)).rows[0]!.o)
    })
    const bucketUrl = `file://${mkdtempSync(path.join(tmpdir(), 'dbgate-rectypes-'))}`
    t = await openPipelineTunnel(db, 'policy: none', {top: `bucket: ${bucketUrl}`})
    const run = async (messages: Buffer[]) => {
      const raw = await t!.raw()
      for (const m of messages.slice(0, -1)) {
        raw.send(m)
        if (m[0] === 0x51) await raw.untilReady()
      }
      raw.send(messages.at(-1)!)
      const replies = await raw.untilReady()
      expect(replies.filter((m) => m.code === 'E').map((m) => m.body.toString()), String(messages.length)).toEqual([])
    }
    // Types the Parse declares.
    await run([serialize.parse({text: CLEAN, types: [oids.kept_text!]}), serialize.bind({values: [NAME]}), serialize.execute({}), serialize.sync()])
    await run([serialize.parse({text: 'select id from orders where status = any($1)', types: [oids._kept_text!]}), serialize.bind({values: [`{"${NAME}"}`]}), serialize.execute({}), serialize.sync()])
    await run([serialize.parse({name: 'named', text: 'select id from orders where id = $2 or status = $1', types: [oids.kept_text!, 23]}), serialize.bind({statement: 'named', values: [NAME, '1']}), serialize.execute({}), serialize.sync()])
    // Types a PREPARE declares, bound through the protocol.
    await run([serialize.query(`prepare p(kept_text) as ${CLEAN}`), serialize.bind({statement: 'p', values: [NAME]}), serialize.execute({}), serialize.sync()])
    await run([serialize.query(`prepare q(public.kept_text[]) as select id from orders where status = any($1)`), serialize.bind({statement: 'q', values: [`{"${NAME}"}`]}), serialize.execute({}), serialize.sync()])
    // A composite column one of whose fields is such a domain: the value is converted to it.
    await run([serialize.parse({text: 'update pairs set pair = $1 where id = $2'}), serialize.bind({values: [`("${NAME}",1)`, '1']}), serialize.execute({}), serialize.sync()])
    await run([serialize.parse({text: 'select id from pairs where pair = $1::kept_pair'}), serialize.bind({values: [`("${NAME}",1)`]}), serialize.execute({}), serialize.sync()])
    await run([serialize.parse({text: 'select id from pairs where pair = $1', types: [oids.kept_pair!]}), serialize.bind({values: [`("${NAME}",1)`]}), serialize.execute({}), serialize.sync()])
    // A range over such a composite type: its input converts each bound, field by field.
    await run([serialize.parse({text: 'select id from spans where span = $1', types: [oids.kept_range!]}), serialize.bind({values: [`["(""${NAME}"",1)","(""${NAME}"",2)")`]}), serialize.execute({}), serialize.sync()])
    await run([serialize.parse({text: 'select id from orders where status = $1::kept_range::text'}), serialize.bind({values: [`["(""${NAME}"",1)","(""${NAME}"",2)")`]}), serialize.execute({}), serialize.sync()])
    await t.close()
    t = undefined
    statements = await recordedStatements(bucketUrl)
    landed = await withClient(db.url, async (c) => (await c.query<{full_name: string}>('select distinct full_name from kept_names')).rows.map((r) => r.full_name))
  })
  afterAll(async () => {
    await t?.close()
  })

  it('masks a value whose declared or compared type runs code on it', () => {
    // The attack did what it meant to: the conversions copied the value into a column of names.
    expect(landed).toEqual([NAME])
    const bound = statements.filter((s) => s.params)
    expect(bound).toHaveLength(10)
    for (const s of bound) {
      expect(s.outcome, s.sql).toBe('ok')
      expect(JSON.stringify(s.params), s.sql).not.toContain('Quill')
    }
    // A value of a declared built-in type is still proven by its place.
    expect(statements.find((s) => s.statementName === 'named')?.params).toEqual(['[masked]', '1'])
  })
})
