/**
 * Masking finds the values PostgreSQL echoes in errors by the wording and quotes of its English
 * messages (`Key (email)=(…) already exists`, `invalid input syntax for type integer: "…"`); a
 * server that writes them in German (`Schlüssel »(email)=(…)« existiert bereits`) would pass them
 * unmasked. So where masking is on, a session whose server would write messages in another
 * language is refused before it starts, and a statement that would switch the language is refused,
 * with the policy pack `none` (masking must not lean on guardrails).
 */
import pg from 'pg'
import {beforeAll, describe, expect, it} from 'vitest'
import {ENGLISH_MESSAGES, englishMessages} from '../../src/policy/assumed-settings.js'
import {checkPreflight} from '../../src/proxy/session-settings.js'
import {maskedTunnel} from './fixture.js'

describe("the language of the server's messages", () => {
  it('is English under C, POSIX and English locales, and nothing else', () => {
    for (const v of ['C', 'C.UTF-8', 'c.utf8', 'POSIX', 'en_US.UTF-8', 'en_GB', 'en', 'English_United States.1252']) expect(englishMessages(v), v).toBe(true)
    for (const v of ['', 'de_DE.UTF-8', 'fr_FR', 'German_Germany.1252', 'ja_JP.eucJP', 'eng', 'cs_CZ', 'es']) expect(englishMessages(v), v).toBe(false)
  })

  it('refuses, before it starts, a session whose server writes messages in another language, saying where it was set and how to undo it', () => {
    const refused = checkPreflight([{name: 'lc_messages', setting: 'de_DE.UTF-8', source: 'user', sourcefile: null}], [ENGLISH_MESSAGES], {database: 'app', user: 'alice'})
    expect(refused).toMatchObject({severity: 'FATAL', code: '55000'})
    expect(refused!.message).toContain('lc_messages = de_DE.UTF-8')
    expect(refused!.detail).toContain('translated ones')
    expect(refused!.hint).toBe('Run ALTER ROLE alice RESET lc_messages.')
    const fromFile = checkPreflight([{name: 'lc_messages', setting: 'fr_FR.UTF-8', source: 'configuration file', sourcefile: '/etc/postgresql/postgresql.conf'}], [ENGLISH_MESSAGES], {database: 'app', user: 'alice'})
    expect(fromFile!.hint).toContain('ALTER ROLE alice SET lc_messages')
    expect(checkPreflight([{name: 'lc_messages', setting: 'en_US.UTF-8', source: 'configuration file', sourcefile: null}], [ENGLISH_MESSAGES], {database: 'app', user: 'alice'})).toBeUndefined()
  })

  describe('through the tunnel, with masking on and the policy pack none', () => {
    const {fx, tunnel} = maskedTunnel()
    let c: pg.Client

    beforeAll(async () => {
      c = await tunnel.client()
    })

    it('refuses every way of switching it to another language, and keeps the session', async () => {
      const attempts: [string, unknown[]?][] = [
        ["set lc_messages = 'de_DE.UTF-8'"],
        ["set local lc_messages to 'fr_FR'"],
        ["select set_config('lc_messages', 'ja_JP.UTF-8', false)"],
        ["select set_config('lc_messages', $1, false)", ['de_DE.UTF-8']],
        ['select set_config($1, $2, false)', ['lc_messages', 'de_DE.UTF-8']],
        ["update pg_settings set setting = 'de_DE.UTF-8' where name = 'lc_messages'"],
        ["prepare p as select set_config('lc_messages', 'es_ES', false); execute p"],
      ]
      for (const [sql, values] of attempts) {
        const refused = await c.query(sql, values).then(
          () => undefined,
          (e: Error & {code?: string; hint?: string}) => e,
        )
        expect(refused?.code, sql).toBe('42501')
        // (A setting named by a parameter is refused by policy even with the pack none: it cannot be judged.)
        expect(refused?.message, sql).toMatch(/masking refuses setting lc_messages|denied by rule fallback/)
      }
      // English values, and going back to the session's own, are fine.
      await c.query("set lc_messages = 'C'")
      await c.query('reset lc_messages')
      expect((await c.query('show lc_messages')).rows[0].lc_messages).toMatch(/^(C|POSIX|en)/)
      // Errors still come masked: the value a failed cast echoes.
      const echoed = await c.query('select full_name::int from customers').then(
        () => undefined,
        (e: Error) => e,
      )
      expect(echoed?.message).toContain('invalid input syntax for type integer')
      for (const secret of fx.secrets) expect(echoed?.message).not.toContain(secret)
    })
  })
})
