/**
 * Masking's view of a call, judged before another session's change commits and run after it:
 * session B's `select upper(id) from public.locked` is masked as the built-in `upper` (no overload
 * takes an integer, so the server would refuse it) and waits on a lock session A holds; A creates
 * `public.upper(int)`, whose body reads customers' names and addresses, and commits. Without a
 * gate the waiting statement resolved `upper(id)` to A's function after the commit and showed
 * every name in clear. The commit now waits for B's statement, and is refused after
 * `tunnel.changeWait` (so the function never exists); every byte B receives is checked.
 */
import pg from 'pg'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {codes} from '../helpers/raw-client.js'
import {leaked, maskingFixture, type MaskingFixture} from './fixture.js'
import {all, recordingRelay, relayedClient, type Seen} from './relay.js'

const BODY = "select string_agg(full_name || ' / ' || address, ', ') from customers"

describe('masking: a function that shadows a built-in, committed while a call to the built-in waits', () => {
  let fx: MaskingFixture
  let tunnel: PipelineTunnel
  let relay: Awaited<ReturnType<typeof recordingRelay>>

  beforeAll(async () => {
    fx = await maskingFixture()
    await withClient(fx.db.url, (c) => c.query('create table public.locked (id int); insert into public.locked values (1), (2)'))
    tunnel = await openPipelineTunnel(fx.db, 'policy: none\ntunnel: {changeWait: 1s}')
    relay = await recordingRelay(tunnel.info.port)
  }, 120_000)
  afterAll(async () => {
    await relay?.close()
    await tunnel?.close().catch(() => {})
    await fx?.close()
  })

  async function someoneWaits(): Promise<void> {
    for (let k = 0; k < 500; k++) {
      const n = await withClient(fx.db.url, async (d) => (await d.query(`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`)).rows[0].n as number)
      if (n > 0) return
      await new Promise((r) => setTimeout(r, 20))
    }
    throw new Error('no session of the test database waits for a lock')
  }

  it.each(['upper', 'lower', 'md5', 'reverse'])('refuses the commit of public.%s(int) while a call to the built-in waits on the committing session', async (name) => {
    const seen: Seen = {bytes: [], strings: []}
    const a = await tunnel.client()
    const b = await relayedClient(tunnel.info.url, relay, seen)
    try {
      await a.query('begin')
      await a.query('lock table public.locked in access exclusive mode')
      const call = b.query(`select ${name}(id) as x from public.locked`).then(
        (r) => JSON.stringify(r.rows),
        (e: Error) => e.message,
      )
      await someoneWaits()
      await a.query(`create or replace function public.${name}(int) returns text language sql as $f$ ${BODY} $f$`)
      const refused = await a.query('commit').then(
        () => undefined,
        (e: Error & {code?: string}) => e.code,
      )
      expect(refused).toBe('55P03')
      await a.query('rollback')
      const answer = await call
      expect(leaked(answer, fx.secrets)).toEqual([])
      expect(leaked(all(seen), fx.secrets)).toEqual([])
      // The server's own answer: no such function, the change was never committed.
      expect(answer).toContain(`function ${name}(integer) does not exist`)
    } finally {
      await a.end()
      await b.end()
      await withClient(fx.db.url, (c) => c.query(`drop function if exists public.${name}(int)`))
    }
  })

  it('has another tunnel in front of the same database read the catalog again when a change is committed', async () => {
    const name = 'btrim'
    const other = await openPipelineTunnel(fx.db, 'policy: none')
    const seen: Seen = {bytes: [], strings: []}
    const a = await tunnel.client()
    const b = await relayedClient(other.info.url, relay2 ?? (relay2 = await recordingRelay(other.info.port)), seen)
    try {
      // The other tunnel has read its catalog: btrim is the built-in there.
      expect((await b.query("select btrim('  x  ') as x")).rows).toEqual([{x: 'x'}])
      await a.query(`create or replace function public.${name}(int) returns text language sql as $f$ ${BODY} $f$`)
      const answer = await b.query(`select ${name}(1) as x`).then(
        (r) => JSON.stringify(r.rows),
        (e: Error) => e.message,
      )
      expect(leaked(answer, fx.secrets)).toEqual([])
      expect(leaked(all(seen), fx.secrets)).toEqual([])
    } finally {
      await a.end()
      await b.end()
      await relay2?.close()
      relay2 = undefined
      await other.close()
      await withClient(fx.db.url, (c) => c.query(`drop function if exists public.${name}(int)`))
    }
  })
  let relay2: Awaited<ReturnType<typeof recordingRelay>> | undefined

  it('reads the catalog again when a session that committed a change goes away before its reply', async () => {
    const name = 'initcap'
    const seen: Seen = {bytes: [], strings: []}
    const a = await tunnel.raw()
    const b = await relayedClient(tunnel.info.url, relay, seen)
    try {
      a.send(serialize.query('begin'))
      await a.untilReady()
      a.send(serialize.query(`create or replace function public.${name}(int) returns text language sql as $f$ ${BODY} $f$`))
      await a.untilReady()
      // The COMMIT runs at once; the client leaves while the rest of the text runs, so no reply to it ever comes.
      a.send(serialize.query('commit; select pg_sleep(0.5)'))
      await new Promise((r) => setTimeout(r, 200))
      a.end()
      const answer = await b.query(`select ${name}(1) as x`).then(
        (r) => JSON.stringify(r.rows),
        (e: Error) => e.message,
      )
      expect(await withClient(fx.db.url, async (d) => (await d.query(`select count(*)::int as n from pg_proc where proname = '${name}' and pronamespace = 'public'::regnamespace`)).rows[0].n)).toBe(1)
      expect(leaked(answer, fx.secrets)).toEqual([])
      expect(leaked(all(seen), fx.secrets)).toEqual([])
    } finally {
      await b.end()
      await withClient(fx.db.url, (c) => c.query(`drop function if exists public.${name}(int)`))
    }
  })

  it.each(['upper', 'md5'])('reads the catalog again once the server ends the session of a client that hung up while committing public.%s(int)', async (name) => {
    const seen: Seen = {bytes: [], strings: []}
    const b = await relayedClient(tunnel.info.url, relay, seen)
    const a = await tunnel.raw()
    try {
      for (const sql of ['begin', `create or replace function public.${name}(int) returns text language sql as $f$ ${BODY} $f$`]) {
        a.send(serialize.query(sql))
        expect(codes(await a.untilReady())).toBe('CZ')
      }
      // The server commits it after the client has gone: no ReadyForQuery ever reports it.
      a.send(serialize.query('select pg_sleep(0.5); commit'))
      await new Promise((r) => setTimeout(r, 100))
      a.end()
      for (let k = 0; k < 2; k++) {
        const answer = await b.query(`select ${name}(id) as x from public.locked`).then(
          (r) => JSON.stringify(r.rows),
          (e: Error) => e.message,
        )
        expect(answer).toBe('[{"x":"[masked]"},{"x":"[masked]"}]')
      }
      expect(leaked(all(seen), fx.secrets)).toEqual([])
    } finally {
      a.end()
      await b.end()
      await withClient(fx.db.url, (c) => c.query(`drop function if exists public.${name}(int)`))
    }
  })
})
