/**
 * Free text in binary fields whose bytes are not all printable: a record (`ROW(body)`), an array
 * (`ARRAY[body]`) or text with a control character (`E'\x01' || body`). The value scanner is what
 * catches e-mails, SSNs, cards, IBANs and keys in free text such as `notes.body`; in `COPY … (FORMAT
 * binary)`, and in binary rows a client asked for without a Describe (so no RowDescription tells
 * their types), such fields were passed unscanned. Through the tunnel `dbgate connect` builds
 * (policy pack none), a field the scanner objects to is now dropped whole (NULL: its text sits
 * among length words that a rewrite in place would break); fields it finds nothing in pass as sent.
 */
import {serialize} from 'pg-protocol'
import pg from 'pg'
import {describe, expect, it} from 'vitest'
import {withClient} from '../helpers/pg.js'
import {EXTRA, leaked, copyOut, maskedTunnel} from './fixture.js'

/** The free-text secrets of notes.body, which only the scanner can find. */
const NOTE_SECRETS = [EXTRA.noteEmail, EXTRA.noteSsn, EXTRA.noteCard, EXTRA.noteIban, EXTRA.noteAws, EXTRA.stripeKey, EXTRA.slackToken]

const QUERIES: [string, string][] = [
  ['a record', 'select row(body) from notes'],
  ['a record among clean fields', 'select row(id, body, 2) from notes'],
  ['an array', 'select array[body] from notes'],
  ['text with a control character', "select E'\\x01' || body from notes"],
  ['text with a control character after it', "select body || E'\\x02' from notes"],
]

describe('masking: free text in binary fields that are not all printable', () => {
  const {fx, tunnel} = maskedTunnel()

  it.each(QUERIES)('the server sends the secrets in binary COPY (%s)', async (_label, sql) => {
    const data = await withClient(fx.db.url, (c) => copyOut(c, `copy (${sql}) to stdout (format binary)`))
    expect(leaked(data, NOTE_SECRETS).length).toBeGreaterThan(0)
  })

  it.each(QUERIES)('drops the fields that hold them from binary COPY through the tunnel (%s)', async (_label, sql) => {
    const c = await tunnel.client()
    const data = await copyOut(c, `copy (${sql}) to stdout (format binary)`)
    expect(data.subarray(0, 11).toString('latin1')).toBe('PGCOPY\n\xff\r\n\0')
    expect(leaked(data, NOTE_SECRETS)).toEqual([])
    // The row with nothing to find keeps its field.
    expect(data.includes(Buffer.from('nothing to see here'))).toBe(true)
    await c.end()
  })

  it.each(QUERIES)('drops them from binary rows without a RowDescription through the tunnel (%s)', async (_label, sql) => {
    const raw = await tunnel.raw()
    raw.send(serialize.parse({text: sql}), serialize.bind({binary: true}), serialize.execute({}), serialize.sync())
    const messages = await raw.untilReady()
    const rows = messages.filter((m) => m.code === 'D')
    expect(rows.length).toBe(4)
    expect(messages.some((m) => m.code === 'E')).toBe(false)
    expect(leaked(Buffer.concat(rows.map((r) => r.body)), NOTE_SECRETS)).toEqual([])
    expect(Buffer.concat(rows.map((r) => r.body)).includes(Buffer.from('nothing to see here'))).toBe(true)
  })
})
