/**
 * The allow-list lineage trusts, checked against the server's own catalog: every function listed as
 * immutable is immutable in every overload, no immutable built-in is missing, every reviewed name
 * exists, and the functions known to run SQL text or read rows the statement never names are not
 * on it. When a PostgreSQL release changes its built-ins, this fails and says which names moved.
 */
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {immutableBuiltins} from '../../src/sql/builtins.js'
import {builtinKind, REVIEWED_BUILTINS} from '../../src/masking/functions.js'
import {adminUrl} from '../helpers/pg.js'

/** What `immutableBuiltins()` derives from the generated table, asked of the server directly. */
const IMMUTABLE_SQL = `
  with f as (
    select proname, provolatile,
           ('internal'::regtype = any(proargtypes::regtype[]) or prorettype = 'internal'::regtype) as internal
    from pg_proc where pronamespace = 'pg_catalog'::regnamespace
  )
  select proname as name from f group by proname
  having bool_and(provolatile = 'i') and not bool_and(internal)
  order by 1`

describe('the built-in functions lineage trusts', () => {
  let c: pg.Client
  let immutable: string[]
  let all: Set<string>

  beforeAll(async () => {
    c = new pg.Client({connectionString: adminUrl('postgres')})
    await c.connect()
    immutable = (await c.query(IMMUTABLE_SQL)).rows.map((r) => r.name as string)
    all = new Set((await c.query("select distinct proname from pg_proc where pronamespace = 'pg_catalog'::regnamespace")).rows.map((r) => r.proname as string))
  })

  afterAll(async () => {
    await c?.end()
  })

  it('lists exactly the immutable built-ins of the server', () => {
    const derived = immutableBuiltins()
    expect(derived.size).toBeGreaterThan(1000)
    expect([...derived].filter((n) => !immutable.includes(n))).toEqual([])
    expect(immutable.filter((n) => !derived.has(n))).toEqual([])
  })

  it('reviews only names the server has', () => {
    expect(REVIEWED_BUILTINS.filter((n) => !all.has(n))).toEqual([])
  })

  it('trusts none of the functions that run SQL text or read what a statement does not name', () => {
    const readers = ['query_to_xml', 'query_to_xmlschema', 'table_to_xml', 'cursor_to_xml', 'schema_to_xml', 'database_to_xml', 'ts_stat', 'ts_rewrite', 'lo_get', 'loread', 'pg_read_file', 'pg_read_binary_file', 'pg_stat_get_activity', 'pg_stat_get_backend_activity', 'pg_mcv_list_items', 'pg_logical_slot_peek_changes', 'pg_logical_slot_get_changes', 'pg_show_all_file_settings', 'pg_hba_file_rules', 'domain_in']
    expect(readers.filter((n) => builtinKind(n) !== 'untraceable')).toEqual([])
    expect(builtinKind('current_setting')).toBe('reads-settings')
    expect(['set_config', 'pg_notify', 'setval', 'pg_advisory_lock', 'lo_from_bytea'].map(builtinKind)).toEqual(Array(5).fill('stores-arguments'))
    expect(builtinKind('a_function_nobody_defined')).toBe('untraceable')
    // Statistics functions are reviewed one by one: a new one may return text, as pg_stat_get_activity does.
    expect(builtinKind('pg_stat_get_lately_added')).toBe('untraceable')
  })
})
