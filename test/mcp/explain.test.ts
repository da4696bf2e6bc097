import {describe, expect, it} from 'vitest'
import {textOf} from './helpers.js'
import {explainAgent} from './explain-fixture.js'

/**
 * The explain tool (annotated read-only, so clients may run it without asking) shows a plan
 * without running the statement unless `analyze: true`, and runs only pure reads then. The agent's
 * text follows `EXPLAIN `, so it must not be able to become EXPLAIN's own options, and a SELECT
 * that calls a built-in with effects is not a pure read. Here in read-write mode, where policy
 * itself lets the agent write: only the tool's promise stands between the text and the run.
 */
describe('the explain tool runs nothing it was not asked to', () => {
  const {explain, state, heard} = explainAgent('mcpex', "create table notes (id serial primary key, body text); insert into notes (body) values ('a'), ('b')")

  /** Texts that, after `EXPLAIN `, name ANALYZE themselves. */
  const SMUGGLED = [
    "(analyze) update notes set body = 'pwned' where id = 1",
    "(ANALYZE true, COSTS off) update notes set body = 'pwned' where id = 1",
    "(format json, analyze) delete from notes where id = 2",
    "analyze update notes set body = 'pwned' where id = 1",
    "ANALYSE VERBOSE insert into notes (body) values ('pwned')",
    "analyze select pg_notify('jobs', 'smuggled')",
    "(analyze false) select pg_notify('jobs', 'smuggled')",
    "/* plan */ (analyze) select nextval('notes_id_seq')",
  ]

  it.each(SMUGGLED)('does not run %s without analyze: true', async (sql) => {
    const before = await state()
    const r = await explain(sql)
    expect(r.isError, textOf(r)).toBe(true)
    expect(await heard()).toEqual([])
    expect(await state()).toEqual(before)
  })

  it.each(["select nextval('notes_id_seq')", "select pg_notify('jobs', 'analyzed')", "select id, setval('notes_id_seq', 40) from notes", 'select pg_advisory_lock(3)'])('does not take %s for a pure read under analyze: true', async (sql) => {
    const before = await state()
    const r = await explain(sql, true)
    expect(r.isError, textOf(r)).toBe(true)
    expect(textOf(r)).toMatch(/not a pure read/)
    expect(await heard()).toEqual([])
    expect(await state()).toEqual(before)
  })

  it('still explains, and analyzes pure reads', async () => {
    const plain = await explain("update notes set body = 'x' where id = 1")
    expect(plain.isError, textOf(plain)).toBeFalsy()
    const analyzed = await explain('select count(*) from notes', true)
    expect(analyzed.isError, textOf(analyzed)).toBeFalsy()
    expect(textOf(analyzed)).toMatch(/actual time/)
    expect((await state()).rows).toEqual([{id: 1, body: 'a'}, {id: 2, body: 'b'}])
  })
})
