/**
 * Values an error prints without quotes. Masking judged quoted values, numbers, caret lines and
 * keys, but several templates print their input bare: names joined by dots (`improper relation
 * name (too many dotted names): alice_novak.b.c.d` from a cast to regclass, regproc or regtype),
 * `invalid normalization form: …`, `… is not a valid encoding name` (the value first), libxml's
 * `Opening and ending tag mismatch: a line 1 and Alice_Novak`, and PL/pgSQL's ASSERT, whose message
 * is whatever the code computed. Each is first run directly against PostgreSQL and shown to print
 * a customer's value, then through the tunnel `dbgate connect` builds, with the policy pack `none`,
 * where no field of the error may hold it. Ordinary errors of statements that read the same
 * table keep their text.
 */
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {DEFAULT_STRATEGIES} from '../../src/masking/categories.js'
import {analyzeText} from '../../src/masking/lineage.js'
import {maskNotice, messageProof} from '../../src/masking/messages.js'
import {createMasker} from '../../src/masking/strategies.js'
import type {ValueMasking} from '../../src/masking/values.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {maskingFixture, type MaskingFixture} from './fixture.js'

const LEAKS = [
  "select (replace(full_name, ' ', '_') || '.b.c.d')::regclass from customers where id = 1",
  "select ('\"' || full_name || '\".b.c.d')::regproc from customers where id = 2",
  "select (replace(full_name, ' ', '_') || '.x.y.z')::regtype from customers where id = 3",
  "select pg_catalog.normalize('a', full_name) from customers where id = 4",
  "select is_normalized('a', full_name) from customers where id = 5",
  'select to_ascii(\'a\', full_name::name) from customers where id = 6',
  'select to_ascii(\'a\', (select full_name from customers where id = 7)::name)',
  "select xmlparse(content '<a></' || replace(full_name, ' ', '_') || '>') from customers where id = 8",
  "select xmlparse(content '<a ' || replace(full_name, ' ', '_') || '></a>') from customers where id = 9",
  "select xmlparse(document '<a><' || replace(full_name, ' ', '_') || ' x=\"1\" x=\"2\"/></a>') from customers where id = 10",
  'do $$ begin assert false, (select full_name from customers where id = 11); end $$',
  "do $$ declare n text; begin select full_name into n from customers where id = 12; assert n is null, 'moved: ' || n; end $$",
  'select check_name(13)',
]

/** A value as the server may print it: as it is, with its spaces made underscores, lower-cased. */
function variants(secrets: string[]): string[] {
  const out = new Set<string>()
  for (const s of secrets) {
    if (s.length < 6) continue
    out.add(s)
    out.add(s.replace(/ /g, '_'))
    out.add(s.replace(/ /g, '_').toLowerCase())
  }
  return [...out]
}

async function errorOf(c: pg.Client, sql: string): Promise<Record<string, unknown>> {
  try {
    await c.query(sql)
  } catch (e) {
    const {message, detail, hint, where, internalQuery, schema, table, column, dataType, constraint} = e as pg.DatabaseError
    return {message, detail, hint, where, internalQuery, schema, table, column, dataType, constraint}
  }
  throw new Error(`no error from ${sql}`)
}

describe('masking: values an error prints unquoted', () => {
  let fx: MaskingFixture
  let tunnel: PipelineTunnel
  let c: pg.Client
  let secrets: string[]

  beforeAll(async () => {
    fx = await maskingFixture()
    await withClient(fx.db.url, (d) =>
      d.query(`create function check_name(i int) returns int language plpgsql as $$
        begin
          assert (select full_name from customers where id = i) = '', (select full_name from customers where id = i);
          return i;
        end $$`),
    )
    tunnel = await openPipelineTunnel(fx.db, 'policy: none')
    c = await tunnel.client()
    secrets = variants(fx.secrets)
  })

  afterAll(async () => {
    await c?.end().catch(() => {})
    await tunnel?.close()
    await fx?.close()
  })

  it.each(LEAKS)('prints a customer directly, and not through the tunnel: %s', async (sql) => {
    const direct = JSON.stringify(await withClient(fx.db.url, (d) => errorOf(d, sql)))
    expect(secrets.filter((s) => direct.includes(s))).not.toEqual([])
    const through = await errorOf(c, sql)
    expect(secrets.filter((s) => JSON.stringify(through).includes(s))).toEqual([])
    expect(through.message).toBeTruthy()
  })

  it.each([
    ['select full_name from customers where id = 1 / 0', 'division by zero'],
    ['select full_name ~~~ 1 from customers', 'operator does not exist: text ~~~ integer'],
    ["select 'a' ~ (full_name || '(') from customers", 'invalid regular expression: parentheses () not balanced'],
    ['select nope from customers', 'column "nope" does not exist'],
    ["select pg_read_file('/nonexistent/dbgate-probe') from customers limit 1", 'could not open file "/nonexistent/dbgate-probe" for reading: No such file or directory'],
    ['select full_name::int from customers', 'invalid input syntax for type integer: "[masked]"'],
    ["select ('a.b.c.d')::regclass, full_name from customers", 'improper relation name (too many dotted names): a.b.c.d'],
    ['select to_ascii(\'a\', \'nonesuch\'::name), full_name from customers', 'nonesuch is not a valid encoding name'],
  ])('keeps an ordinary error of a statement that reads customers: %s', async (sql, message) => {
    const through = await errorOf(c, sql)
    expect(through.message).toBe(message)
  })

  it('keeps the server\'s own texts of a statement that writes customers, and masks a line with a word of no template', () => {
    const sql = "update customers set full_name = 'x' where id = 1"
    const text = analyzeText(sql, fx.catalog)
    if (!text.ok) throw new Error('does not parse')
    const m: ValueMasking = {masker: createMasker('k'), catalog: fx.catalog, strategyOf: (cat) => DEFAULT_STRATEGIES[cat]}
    const mask = (fields: Record<string, string>) => ({...fields, ...maskNotice(fields, text.statements[0], m, messageProof(sql, fx.catalog))})
    const deadlock = {
      severity: 'ERROR',
      message: 'deadlock detected',
      detail: 'Process 4711 waits for ShareLock on transaction 812; blocked by process 4712.\nProcess 4712 waits for ExclusiveLock on tuple (0,1) of relation 16384 of database 5; blocked by process 4711.',
      hint: 'See server log for query details.',
      where: 'while updating tuple (0,1) in relation "customers"',
    }
    expect(mask(deadlock)).toEqual(deadlock)
    for (const message of ['could not serialize access due to concurrent update', 'canceling statement due to lock timeout', 'value too long for type character varying(40)']) {
      expect(mask({severity: 'ERROR', message}).message).toBe(message)
    }
    expect(mask({severity: 'ERROR', message: 'Grace Hopper is not a valid encoding name'}).message).toBe('[masked]')
    expect(mask({severity: 'ERROR', message: 'invalid input syntax', detail: 'Token Grace is invalid.\nThe input string ended unexpectedly.'}).detail).toBe('[masked]\nThe input string ended unexpectedly.')
  })
})
