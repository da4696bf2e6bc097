/**
 * The settings the tunnel's analysis depends on (issue 13, families 1 and 2, the tunnel's part):
 * a session whose server settings differ from what the analysis assumes is refused before it
 * starts, and a reported change during the session ends it, with a FATAL that says why and a
 * recorded end reason. Prevention of the routes (SET, set_config, text-executing functions) is the
 * statement policy's; these tunnels run without it, as a client that got past it would be.
 */
import pg from 'pg'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import type {SessionInfo, StatementContext} from '../../src/proxy/seam.js'
import {decodeNotice} from '../../src/wire/backend.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {RawClient} from '../helpers/raw-client.js'
import {startTunnel, type TestTunnel} from '../helpers/tunnel.js'

describe('the settings the analysis depends on', () => {
  let db: UpstreamInfo
  let t: TestTunnel
  const ended: {session: SessionInfo; reason: string}[] = []
  const seen: {superuser?: string; authorization?: string; encoding?: string}[] = []

  beforeAll(async () => {
    db = await createTestDatabase()
    t = await startTunnel(db, {
      onSessionEnd: (session, reason) => ended.push({session, reason}),
      statement: (_sql: string, ctx: StatementContext) => {
        const p = ctx.session.parameters
        seen.push({superuser: p.get('is_superuser'), authorization: p.get('session_authorization'), encoding: p.get('client_encoding')})
        return {action: 'allow'}
      },
    })
  })
  afterAll(() => t.close())

  describe('before the session starts', () => {
    // Each is preset where no statement through the tunnel could have set it.
    const presets: [string, string, RegExp][] = [
      ['transform_null_equals', 'on', /transform_null_equals = on \(set for the database with ALTER DATABASE \S+ SET\)/],
      ['standard_conforming_strings', 'off', /standard_conforming_strings = off \(set for the database with ALTER DATABASE/],
      ['session_replication_role', 'replica', /session_replication_role = replica \(set for the database/],
      ['backslash_quote', 'off', /backslash_quote = off/],
    ]
    for (const [name, value, message] of presets) {
      it(`refuses a session where ${name} is ${value}, saying where it comes from`, async () => {
        const own = await createTestDatabase()
        await withClient(own.url, (c) => c.query(`alter database ${own.database} set ${name} = ${value}`))
        const tunnel = await startTunnel(own)
        try {
          const c = new pg.Client({connectionString: tunnel.url})
          const e = (await c.connect().catch((x: unknown) => x)) as Error & {code?: string; hint?: string; detail?: string}
          expect(e).toBeInstanceOf(Error)
          expect(e.code).toBe('55000')
          expect(e.message).toMatch(message)
          expect(e.detail).toMatch(/^Why it matters: /)
          expect(e.hint).toMatch(new RegExp(`ALTER DATABASE \\S+ RESET ${name}`))
          expect(tunnel.logs.some((l) => l.includes(`refused the session`) && l.includes(name))).toBe(true)
        } finally {
          await tunnel.close()
        }
      })
    }

    it('refuses a client encoding the analysis cannot read, from the startup parameters', async () => {
      const refused = RawClient.connect(t.port, {password: t.secret, database: db.database, params: {client_encoding: 'SJIS'}})
      await expect(refused).rejects.toThrow(/client_encoding = SJIS \(from the connection's startup parameters\)/)
    })
  })

  describe('during the session', () => {
    const changes: [string, string, RegExp][] = [
      ['set standard_conforming_strings = off', 'standard_conforming_strings', /reports standard_conforming_strings = off/],
      ["select set_config('standard_conforming_strings', 'off', false)", 'standard_conforming_strings', /reports standard_conforming_strings = off/],
      ["set client_encoding = 'LATIN1'", 'client_encoding', /reports client_encoding = LATIN1/],
      ["do $$ begin perform set_config('client_encoding', 'SJIS', false); end $$", 'client_encoding', /reports client_encoding = SJIS/],
    ]
    for (const [sql, name, message] of changes) {
      it(`ends the session when the server reports ${name} changed (${sql.split(' ')[0]} …), and records why`, async () => {
        const raw = await RawClient.connect(t.port, {password: t.secret, database: db.database})
        raw.send(serialize.query(sql), serialize.query('select 1'))
        let fatal: ReturnType<typeof decodeNotice> | undefined
        for (;;) {
          const m = await raw.next().catch(() => undefined)
          if (!m) break
          if (m.code === 'E') fatal = decodeNotice(m.body)
          if (m.code === 'Z' && !fatal) continue
        }
        expect(fatal).toMatchObject({severity: 'FATAL', code: '55000', message: expect.stringMatching(message)})
        expect(fatal!.message).toMatch(/so it ended the session/)
        await raw.waitClosed()
        const mine = ended.find((e) => message.test(e.reason))
        expect(mine?.reason).toMatch(/ended the session/)
      })
    }

    it('keeps sessions that change other settings, and shows hooks what the server reports', async () => {
      seen.length = 0
      const c = await t.client()
      await c.query("set application_name = 'renamed'")
      await c.query('set standard_conforming_strings = on')
      expect((await c.query('select 1 as alive')).rows).toEqual([{alive: 1}])
      expect(seen.at(-1)).toEqual({superuser: 'on', authorization: db.user, encoding: 'UTF8'})
    })
  })
})
