/**
 * A function or operator created after the catalog was read, whose name is a built-in's: lineage
 * trusts `upper(…)` as the built-in, but PostgreSQL resolves `upper(1)` to `public.upper(int)` when
 * pg_catalog has no overload that takes an integer, and that function may read anything. The
 * catalog learns of it only when it is re-read, so each way of calling it before that is tried,
 * through the tunnel `dbgate connect` builds with the policy pack `none`: the creating statement and
 * the call in one text, a DO block that creates it with DDL the text does not show, a transaction
 * block the catalog's connection cannot see into, the extended protocol, a second session, and
 * pipelines of the extended protocol. Every byte the clients receive is checked for the values.
 */
import pg from 'pg'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import type {RawMessage} from '../helpers/raw-client.js'
import {withClient} from '../helpers/pg.js'
import {leaked, maskingFixture, type MaskingFixture} from './fixture.js'
import {all, recordingRelay, relayedClient, type Seen} from './relay.js'

/** Built-in names without an overload taking an integer, so `name(1)` reaches only the shadow. */
const NAMES = ['upper', 'lower', 'initcap', 'btrim', 'ltrim', 'rtrim', 'md5', 'reverse', 'quote_ident', 'quote_literal', 'ascii', 'octet_length', 'bit_length', 'char_length', 'lpad', 'rpad', 'translate', 'split_part', 'strpos', 'starts_with', 'sha256', 'sha512', 'sha224', 'sha384', 'to_ascii', 'length', 'bit_count', 'character_length', 'unistr', 'jsonb_pretty', 'jsonb_typeof', 'json_typeof', 'regexp_count', 'pg_size_bytes', 'to_tsquery', 'plainto_tsquery', 'jsonb_array_length', 'json_array_length']

/** The body reads names and addresses: values only lineage can mask, the scanner cannot. */
const BODY = "select string_agg(full_name || ' / ' || address, ', ') from customers"

function createSql(name: string): string {
  return `create or replace function public.${name}(int) returns text language sql as $f$ ${BODY} $f$`
}

/** The same DDL run by a DO block from a text that holds neither `create` nor the function's name. */
function hiddenCreateSql(name: string): string {
  const encoded = Buffer.from(createSql(name)).toString('base64')
  return `do $$ begin execute convert_from(decode('${encoded}', 'base64'), 'UTF8'); end $$`
}

/** A domain whose check calls a function that prints what it reads, created by a DO block. */
function hiddenDomainSql(domain: string): string {
  const ddl = `create or replace function public.${domain}_check(t text) returns boolean language plpgsql as $f$ begin raise notice '%', (${BODY}); return true; end $f$; create domain public.${domain} as text check (public.${domain}_check(value))`
  return `do $$ begin execute convert_from(decode('${Buffer.from(ddl).toString('base64')}', 'base64'), 'UTF8'); end $$`
}

/** An operator (`###` and siblings) over a shadowing function, created by a DO block. */
function hiddenOperatorSql(fn: string, op: string): string {
  const ddl = `${createSql(fn).replace('(int)', '(int, int)')}; create operator public.${op} (function = public.${fn}, leftarg = int, rightarg = int)`
  return `do $$ begin execute convert_from(decode('${Buffer.from(ddl).toString('base64')}', 'base64'), 'UTF8'); end $$`
}

describe('masking: functions and operators that shadow built-ins, created after the catalog was read', () => {
  let fx: MaskingFixture
  let tunnel: PipelineTunnel & {env: NodeJS.ProcessEnv}
  let relay: Awaited<ReturnType<typeof recordingRelay>>
  let names: string[]

  beforeAll(async () => {
    fx = await maskingFixture()
    tunnel = await openPipelineTunnel(fx.db, 'policy: none')
    relay = await recordingRelay(tunnel.info.port)
    names = [...NAMES]
  })

  afterAll(async () => {
    await relay?.close()
    await tunnel?.close().catch(() => {})
    await fx?.close()
  })

  /** A name no case has used yet: once the catalog holds a function of that name, it is distrusted anyway. */
  function fresh(): string {
    const n = names.shift()
    if (!n) throw new Error('out of built-in names')
    return n
  }

  const client = (seen: Seen, extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> => relayedClient(tunnel.info.url, relay, seen, extra)

  /** What a direct connection gets from the shadow: proof that the case is not vacuous. */
  async function direct(sql: string): Promise<string[]> {
    return withClient(fx.db.url, async (c) => {
      const notices: string[] = []
      c.on('notice', (n) => notices.push(n.message ?? ''))
      const rows = JSON.stringify((await c.query(sql)).rows)
      return leaked(rows + notices.join('\n'), fx.secrets)
    })
  }

  /** Label, steps and the call that reveals values directly; `simple`: the steps hold texts of several statements. */
  const cases: [string, (n: string) => {steps: string[]; call: string; simple?: true}][] = [
    ['created and called in one text', (n) => ({steps: [`${createSql(n)}; select ${n}(1)`], call: `select ${n}(1)`, simple: true})],
    ['created by a DO block, called in one text', (n) => ({steps: [`${hiddenCreateSql(n)}; select ${n}(1) as x`], call: `select ${n}(1)`, simple: true})],
    ['created by a DO block, called next', (n) => ({steps: [hiddenCreateSql(n), `select ${n}(1)`], call: `select ${n}(1)`})],
    ['created by a DO block, called next with a sensitive table read', (n) => ({steps: [hiddenCreateSql(n), `select ${n}(1), id from customers`], call: `select ${n}(1)`})],
    ['created and called in a transaction block', (n) => ({steps: ['begin', hiddenCreateSql(n), `select ${n}(1)`, 'commit'], call: `select ${n}(1)`})],
    ['in a transaction block opened by the same text', (n) => ({steps: [`begin; ${hiddenCreateSql(n)}`, `select ${n}(1)`, 'commit'], call: `select ${n}(1)`, simple: true})],
    ['created by DDL the tunnel sees, called next', (n) => ({steps: [createSql(n), `select ${n}(1)`], call: `select ${n}(1)`})],
    ['an operator created by a DO block, used next', (n) => ({steps: [hiddenOperatorSql(n, '###'), 'select 1 ### 2'], call: 'select 1 ### 2'})],
    ['a domain whose check prints values, created and used in one text', (n) => ({steps: [`${hiddenDomainSql(`d_${n}`)}; select 'x'::d_${n}`], call: `select 'x'::d_${n}`, simple: true})],
    ['a domain whose check prints values, in a transaction block', (n) => ({steps: ['begin', hiddenDomainSql(`e_${n}`), `select 'x'::e_${n}`, 'commit'], call: `select 'x'::e_${n}`})],
  ]

  it.each([
    ['the simple protocol', false],
    ['the extended protocol', true],
  ])('masks what a shadowing function returns over %s', async (_name, extended) => {
    const failures: string[] = []
    for (const [label, make] of cases) {
      // One statement per Parse: texts of several go through the simple protocol only.
      if (extended && make('x').simple) continue
      const n = fresh()
      const {steps, call} = make(n)
      const seen: Seen = {bytes: [], strings: []}
      const c = await client(seen)
      for (const sql of steps) {
        await c.query(extended ? ({text: sql, queryMode: 'extended'} as pg.QueryConfig) : sql).catch((e: Error) => {
          throw new Error(`${label}: ${sql.slice(0, 80)}: ${e.message}`)
        })
      }
      await c.end()
      expect(await direct(call), `${label}: the shadow must reveal values directly`).not.toEqual([])
      const found = leaked(all(seen), fx.secrets)
      if (found.length > 0) failures.push(`${label} (${n})\n    leaked: ${found.slice(0, 2).join(' | ')}`)
      if (label.startsWith('an operator')) await withClient(fx.db.url, (d) => d.query('drop operator public.### (int, int)'))
    }
    expect(failures).toEqual([])
  })

  it('masks it after a text too large to analyse created it: next, in a transaction block, in a second session, over both protocols', async () => {
    // Over the lineage analysis' size limit, a text is masked as untraceable; its DO block still
    // ran, and the function it created was never read into the catalog, in any session.
    const padded = (sql: string) => `${sql} /* ${'x'.repeat(300 * 1024)} */`
    const shapes: [string, (n: string) => {steps: string[]; call: string; second?: true}][] = [
      ['called next', (n) => ({steps: [padded(hiddenCreateSql(n))], call: `select ${n}(1)`})],
      ['called next with a sensitive table read', (n) => ({steps: [padded(hiddenCreateSql(n))], call: `select ${n}(1), id from customers`})],
      ['in a transaction block', (n) => ({steps: ['begin', padded(hiddenCreateSql(n))], call: `select ${n}(1)`})],
      ['called by a second session', (n) => ({steps: [padded(hiddenCreateSql(n))], call: `select ${n}(1)`, second: true})],
    ]
    const failures: string[] = []
    for (const extended of [false, true]) {
      for (const [label, make] of shapes) {
        const n = fresh()
        const {steps, call, second} = make(n)
        const seen: Seen = {bytes: [], strings: []}
        const a = await client(seen)
        const b = second ? await client(seen) : a
        const q = (c: pg.Client, sql: string) => c.query(extended ? ({text: sql, queryMode: 'extended'} as pg.QueryConfig) : sql)
        for (const sql of steps) await q(a, sql)
        await q(b, call)
        if (steps[0] === 'begin') await a.query('commit')
        await a.end()
        if (second) await b.end()
        expect(await direct(`select ${n}(1)`), `${label}: the shadow must reveal values directly`).not.toEqual([])
        const found = leaked(all(seen), fx.secrets)
        if (found.length > 0) failures.push(`${extended ? 'extended' : 'simple'}: ${label} (${n})\n    leaked: ${found.slice(0, 2).join(' | ')}`)
      }
    }
    expect(failures).toEqual([])
  })

  it('masks it in a second session while the first session\'s DO block or procedure has committed it and goes on', async () => {
    // PostgreSQL commits at a COMMIT inside the block, long before the block's own reply.
    const goOn = "commit; perform pg_sleep(1.5);"
    const failures: string[] = []
    for (const form of ['do', 'call'] as const) {
      for (const extended of [false, true]) {
        const n = fresh()
        const create = `execute convert_from(decode('${Buffer.from(createSql(n)).toString('base64')}', 'base64'), 'UTF8');`
        if (form === 'call') await withClient(fx.db.url, (d) => d.query(`create or replace procedure public.proc_${n}() language plpgsql as $p$ begin ${create} ${goOn} end $p$`))
        const seen: Seen = {bytes: [], strings: []}
        const a = await client({bytes: [], strings: []})
        const b = await client(seen)
        const running = a.query(form === 'do' ? `do $$ begin ${create} ${goOn} end $$` : `call public.proc_${n}()`)
        // Until the function exists (committed) the call fails: retry while the block goes on.
        let answered = false
        for (let i = 0; i < 20 && !answered; i++) {
          await new Promise((r) => setTimeout(r, 50))
          answered = await b.query(extended ? ({text: `select ${n}(1)`, queryMode: 'extended'} as pg.QueryConfig) : `select ${n}(1)`).then(() => true, () => false)
        }
        await running
        // Once the block's reply reports its transaction over, the catalog holds the function: built-ins are in clear again.
        expect((await b.query("select left('plain words', 5) as a")).rows[0]).toEqual({a: 'plain'})
        await a.end()
        await b.end()
        expect(answered, `${form}: the call ran while the block went on`).toBe(true)
        const found = leaked(all(seen), fx.secrets)
        if (found.length > 0) failures.push(`${form}${extended ? ' (extended)' : ''} (${n})\n    leaked: ${found.slice(0, 2).join(' | ')}`)
      }
    }
    expect(failures).toEqual([])
  })

  it('masks it in a second session that calls it as soon as the first created it', async () => {
    const n = fresh()
    const seen: Seen = {bytes: [], strings: []}
    const a = await client({bytes: [], strings: []})
    const b = await client(seen)
    await a.query(hiddenCreateSql(n))
    await b.query(`select ${n}(1)`)
    await a.end()
    await b.end()
    expect(await direct(`select ${n}(1)`)).not.toEqual([])
    expect(leaked(all(seen), fx.secrets)).toEqual([])
  })

  it('masks it in a second session once the first commits it by a Sync sent after the Execute was answered', async () => {
    // The Execute's answer comes before the Sync commits: a read of the catalog prompted by it
    // still shows the built-in, and the second session must not keep that read past the commit.
    const failures: string[] = []
    for (const make of [createSql, hiddenCreateSql]) {
      const n = fresh()
      const seen: Seen = {bytes: [], strings: []}
      const a = await tunnel.raw()
      const b = await client(seen)
      a.send(serialize.parse({text: make(n)}), serialize.bind({}), serialize.execute({}), serialize.flush())
      for (let m = await a.next(); m.code !== 'C'; m = await a.next());
      // The change is not committed yet, but its commit (the Sync) may come at any moment: another
      // session's statement waits for it, and is judged after it (docs/policy.md).
      const meanwhile = b.query(`select 1 as v, ${n}(1) as w`)
      a.send(serialize.sync())
      await a.untilReady()
      await meanwhile
      await b.query(`select ${n}(1) as v`)
      await b.end()
      a.end()
      expect(await direct(`select ${n}(1)`)).not.toEqual([])
      const found = leaked(all(seen), fx.secrets)
      if (found.length > 0) failures.push(`${make.name} (${n})\n    leaked: ${found.slice(0, 2).join(' | ')}`)
    }
    expect(failures).toEqual([])
  })

  it('masks it in pipelines of the extended protocol: with a Sync between, without, and after a Flush', async () => {
    const failures: string[] = []
    for (const between of ['sync', 'none', 'flush'] as const) {
      const n = fresh()
      const raw = await tunnel.raw()
      const create = [serialize.parse({text: hiddenCreateSql(n)}), serialize.bind({}), serialize.execute({})]
      const call = [serialize.parse({text: `select ${n}(1)`}), serialize.bind({}), serialize.describe({type: 'P'}), serialize.execute({})]
      const got: RawMessage[] = []
      if (between === 'flush') {
        // The DO block's CommandComplete arrives while its implicit transaction is still open.
        raw.send(...create, serialize.flush())
        for (let m = await raw.next(); ; m = await raw.next()) {
          got.push(m)
          if (m.code === 'C') break
        }
        raw.send(...call, serialize.sync())
      } else {
        raw.send(...create, ...(between === 'sync' ? [serialize.sync()] : []), ...call, serialize.sync())
        if (between === 'sync') got.push(...(await raw.untilReady()))
      }
      got.push(...(await raw.untilReady()))
      expect(await direct(`select ${n}(1)`)).not.toEqual([])
      const found = leaked(Buffer.concat(got.map((m) => m.body)), fx.secrets)
      if (found.length > 0) failures.push(`${between} between (${n})\n    leaked: ${found.slice(0, 2).join(' | ')}`)
    }
    expect(failures).toEqual([])
  })

  it('masks it when the call follows the reply to an earlier text of the same pipeline, while the change is still open', async () => {
    // The first reply reports no transaction open, but it ends the text before the change: the
    // change's own reply has not come yet, and its transaction is still open when the call runs.
    const failures: string[] = []
    const slow = 'select pg_sleep(0.3)'
    for (const form of ['simple', 'extended'] as const) {
      const n = fresh()
      const raw = await tunnel.raw()
      const run = (text: string) => [serialize.parse({text}), serialize.bind({}), serialize.execute({})]
      if (form === 'simple') raw.send(serialize.query(slow), serialize.query(`begin; ${hiddenCreateSql(n)}; select pg_sleep(1)`))
      else raw.send(...run(slow), serialize.sync(), ...run(hiddenCreateSql(n)), ...run('select pg_sleep(1)'))
      const first = await raw.untilReady()
      expect(first.at(-1)!.body.toString('latin1'), form).toBe('I')
      const call = `select ${n}(1)`
      if (form === 'simple') raw.send(serialize.query(call), serialize.query('commit'))
      else raw.send(serialize.parse({text: call}), serialize.bind({}), serialize.describe({type: 'P'}), serialize.execute({}), serialize.sync())
      const got: RawMessage[] = []
      // Simple: the change's text, the call and the COMMIT; extended: one Sync ends them all.
      for (let i = form === 'simple' ? 3 : 1; i > 0; i--) got.push(...(await raw.untilReady()))
      raw.end()
      expect(await direct(call), form).not.toEqual([])
      const found = leaked(Buffer.concat(got.map((m) => m.body)), fx.secrets)
      if (found.length > 0) failures.push(`${form} (${n})\n    leaked: ${found.slice(0, 2).join(' | ')}`)
    }
    expect(failures).toEqual([])
  })

  it('still refuses to store untraced values while names are distrusted', async () => {
    const c = await tunnel.client()
    await c.query('begin')
    await c.query('do $$ begin perform 1; end $$')
    const refused: string[] = []
    for (const sql of ["select pg_notify('leak', full_name) from customers where id = 1", "select set_config('x.leak', address, false) from customers where id = 2"]) {
      refused.push(await c.query(sql).then(() => 'ran', (e: Error) => e.message))
      await c.query('rollback')
      await c.query('begin')
      await c.query('do $$ begin perform 1; end $$')
    }
    await c.query('rollback')
    await c.end()
    expect(refused).toEqual([expect.stringMatching(/notification payload/), expect.stringMatching(/set_config\(\) would store/)])
  })

  it('still shows built-ins in clear where nothing may have shadowed them, and once a change is committed', async () => {
    const plain = "select left('plain words', 5) as a, 1 + 1 as b, abs(-3) as c"
    const clear = {a: 'plain', b: 2, c: 3}
    const c = await tunnel.client()
    expect((await c.query(plain)).rows[0]).toEqual(clear)
    // Names are distrusted only until what may have changed them is committed and read.
    await c.query("do $$ begin perform 1; end $$")
    expect((await c.query(plain)).rows[0]).toEqual(clear)
    await c.query('begin')
    await c.query("do $$ begin perform 1; end $$")
    expect((await c.query(plain)).rows[0]).toEqual({a: '[masked]', b: 0, c: 0})
    await c.query('commit')
    expect((await c.query(plain)).rows[0]).toEqual(clear)
    expect((await c.query({text: plain, queryMode: 'extended'} as pg.QueryConfig)).rows[0]).toEqual(clear)
    await c.end()
  })
})
