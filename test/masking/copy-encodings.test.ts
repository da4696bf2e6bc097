/**
 * `COPY … TO STDOUT` with an `ENCODING` option: the server converts the rows to that encoding, and
 * in SJIS, BIG5, GBK or GB18030 the second byte of a character may be a backslash or the delimiter,
 * which the server writes as it is (it knows the character) while a reader of UTF-8 takes it for
 * an escape or a field's end. Through the tunnel `dbgate connect` builds (policy pack none), a
 * clean constant ending in such a character moved every customer's name to the place of a clean
 * column, which was passed in clear. Now such a COPY is refused before it runs, naming the
 * encoding and what to do; with UTF-8 (spelt any way the server takes) it runs and is masked.
 */
import pg from 'pg'
import {to as copyTo} from 'pg-copy-streams'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {leaked, maskingFixture, type MaskingFixture} from './fixture.js'

/** What a COPY sent the client, or the error it ended with. */
async function copyOut(c: pg.Client, sql: string): Promise<{data: Buffer} | {error: pg.DatabaseError}> {
  const chunks: Buffer[] = []
  try {
    const stream = c.query(copyTo(sql))
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (d: Buffer) => chunks.push(d))
      stream.on('end', () => resolve())
      stream.on('error', reject)
    })
    return {data: Buffer.concat(chunks)}
  } catch (e) {
    return {error: e as pg.DatabaseError}
  }
}

// Each constant's last byte in the named encoding is 0x5C (a backslash) or 0x7C (`|`, the delimiter).
const ATTACKS: [string, string][] = [
  ['SJIS, a backslash byte before the tab', "copy (select 'ソ'::text, full_name, country from customers) to stdout (encoding 'SJIS')"],
  ['BIG5, a backslash byte', "copy (select 'ツ'::text, address, country from customers) to stdout (encoding 'big5')"],
  ['GBK, a backslash byte', "copy (select '乗'::text, full_name, country from customers) to stdout (encoding 'GBK')"],
  ['GB18030, a backslash byte', "copy (select '㘎'::text, full_name, country from customers) to stdout (encoding 'gb-18030')"],
  ['SJIS, a delimiter byte', "copy (select 'ポ'::text, full_name, country, id from customers) to stdout (delimiter '|', encoding 'Shift_JIS')"],
  ['SJIS CSV, a delimiter byte', "copy (select 'ポ'::text, full_name, country, id from customers) to stdout (format csv, delimiter '|', encoding 'SJIS')"],
  ['BIG5 CSV, a delimiter byte', "copy (select 'ヤ'::text, full_name, country, id from customers) to stdout (format csv, delimiter '|', encoding 'BIG5')"],
]

describe('masking: COPY TO STDOUT in another encoding', () => {
  let fx: MaskingFixture
  let tunnel: PipelineTunnel
  let names: string[]

  beforeAll(async () => {
    fx = await maskingFixture()
    names = (await withClient(fx.db.url, (c) => c.query('select full_name, address from customers'))).rows.flatMap((r) => [r.full_name as string, r.address as string])
    tunnel = await openPipelineTunnel(fx.db, 'policy: none')
  })

  afterAll(async () => {
    await tunnel?.close()
    await fx?.close()
  })

  it.each(ATTACKS)('the server sends the values (%s)', async (_label, sql) => {
    const direct = await withClient(fx.db.url, (c) => copyOut(c, sql))
    expect('data' in direct && leaked(direct.data, names).length).toBeGreaterThan(0)
  })

  it.each(ATTACKS)('is refused through the tunnel, and nothing reaches the client (%s)', async (_label, sql) => {
    const c = await tunnel.client()
    const out = await copyOut(c, sql)
    if ('data' in out) expect(leaked(out.data, fx.secrets)).toEqual([])
    expect('error' in out && out.error.message).toMatch(/^dbgate: masking refuses COPY … TO STDOUT with ENCODING '[^']+': masking reads COPY data as UTF-8/)
    const encoding = /encoding '([^']+)'/i.exec(sql)![1]!.toUpperCase()
    expect('error' in out && out.error.hint).toBe(`Leave out the ENCODING option (or give ENCODING 'UTF8') and convert the output on the client (iconv -f UTF-8 -t ${encoding}).`)
    // The session goes on.
    expect((await c.query('select 1 as one')).rows).toEqual([{one: 1}])
    await c.end()
  })

  it.each([
    ['utf8', "copy (select 'ソ'::text, full_name, country from customers) to stdout (encoding 'utf8')"],
    ['UTF-8 in CSV', "copy (select 'ポ'::text, full_name, country, id from customers) to stdout (format csv, delimiter '|', encoding 'UTF-8')"],
    ['unicode', "copy customers to stdout (encoding 'unicode')"],
    ['no option', "copy (select 'ソ'::text, full_name, country from customers) to stdout"],
  ])('runs a COPY in UTF-8 (%s), masked', async (_label, sql) => {
    const c = await tunnel.client()
    const out = await copyOut(c, sql)
    expect('data' in out && out.data.length).toBeGreaterThan(0)
    expect('data' in out && leaked(out.data, fx.secrets)).toEqual([])
    expect('data' in out && out.data.toString('utf8')).toMatch(/\bUS\b/)
    await c.end()
  })

  it('masks every field of a text too large to analyse, whatever its encoding', async () => {
    const c = await tunnel.client()
    const pad = `/* ${'x'.repeat(300 * 1024)} */`
    const out = await copyOut(c, `copy (select 'ソ'::text, full_name, country from customers) to stdout (encoding 'SJIS') ${pad}`)
    expect('data' in out && out.data.length).toBeGreaterThan(0)
    expect('data' in out && leaked(out.data, names)).toEqual([])
    await c.end()
  })
})
