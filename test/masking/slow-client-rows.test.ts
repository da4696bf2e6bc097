/**
 * Masked rows are written into a shared output buffer that the tunnel takes back once a client
 * socket has taken a write (docs/performance-history.md, "Seventh round"). A client that stops reading
 * makes the tunnel's writes queue while later rows are masked: if the buffer were taken back then,
 * rows already queued for the client would be overwritten by later ones. Through the tunnel exactly
 * as `dbgate connect` builds it, with a raw client that stops reading until the server is done or
 * blocked, over the simple protocol, the extended protocol and COPY, with a second client streaming
 * masked rows meanwhile (sharing the buffer): every row must arrive whole, in order, masked.
 */
import {createHash} from 'node:crypto'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {decodeDataRow} from '../../src/wire/backend.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {createTestDatabase, withClient, type UpstreamInfo} from '../helpers/pg.js'
import type {RawMessage} from '../helpers/raw-client.js'
import {waitFor} from '../helpers/wait.js'

// Several times what loopback sockets buffer in the kernel (a few MB each way), so the tunnel's writes queue.
const ROWS = 200_000
const md5 = (s: string) => createHash('md5').update(s).digest('hex')
const SELECT = `select id, email, tag from slow_members where id <= ${ROWS} order by id`
const COPY = `copy (select id, email, tag from slow_members where id <= ${ROWS} order by id) to stdout`

describe('masked rows for a client that stops reading', () => {
  let db: UpstreamInfo
  let t: PipelineTunnel

  beforeAll(async () => {
    db = await createTestDatabase('slowrows')
    await withClient(db.url, (c) =>
      c.query(`create table slow_members (id int primary key, email text, tag text);
        insert into slow_members select g, 'member' || g || '@example.com', md5(g::text) from generate_series(1, ${ROWS}) g`),
    )
    t = await openPipelineTunnel(db)
  }, 60_000)
  afterAll(() => t?.close())

  /** Sends `bytes` with the client not reading, waits until the server finished or blocked writing, then reads it all. */
  async function stalled(marker: string, bytes: Buffer): Promise<RawMessage[]> {
    const raw = await t.raw()
    // Another session streams masked rows through the same buffer meanwhile.
    const other = await t.client()
    try {
      raw.socket.pause()
      raw.send(bytes)
      await withClient(db.url, (c) =>
        waitFor(
          async () =>
            (
              await c.query(
                `select 1 from pg_stat_activity where query like $1 and pid <> pg_backend_pid() and (state = 'idle' or wait_event = 'ClientWrite')`,
                [`%${marker}%`],
              )
            ).rowCount === 1,
          'the server finished the statement or waits to write it to the tunnel',
          {timeoutMs: 30_000},
        ),
      )
      const busy = await other.query(`select id, email from slow_members where id <= 20000 order by id`)
      expect(busy.rows[19_999].email).not.toContain('member20000')
      raw.socket.resume()
      return await raw.untilReady()
    } finally {
      raw.end()
      await other.end().catch(() => undefined)
    }
  }

  /** Every row present once, in order, its tag matching its id, its e-mail masked. */
  function checkRows(values: string[][]): void {
    expect(values).toHaveLength(ROWS)
    for (let i = 0; i < ROWS; i++) {
      const [id, email, tag] = values[i]!
      if (id !== String(i + 1) || tag !== md5(String(i + 1)) || email!.includes(`member${i + 1}@`) || !email!.endsWith('@example.com')) {
        throw new Error(`row ${i + 1} arrived as ${JSON.stringify(values[i])}`)
      }
    }
  }

  const rowsOf = (messages: RawMessage[]): string[][] =>
    messages.filter((m) => m.code === 'D').map((m) => decodeDataRow(m.body).map((v) => (v === null ? '' : v.toString('utf8'))))

  it('simple protocol', async () => {
    const messages = await stalled('stall-simple', serialize.query(`${SELECT} /* stall-simple */`))
    expect(messages.map((m) => m.code).filter((c) => c !== 'D').join('')).toBe('TCZ')
    checkRows(rowsOf(messages))
  }, 90_000)

  it('extended protocol', async () => {
    const sql = `${SELECT} /* stall-extended */`
    const messages = await stalled('stall-extended', Buffer.concat([serialize.parse({text: sql}), serialize.bind({}), serialize.describe({type: 'P'}), serialize.execute({}), serialize.sync()]))
    expect(messages.map((m) => m.code).filter((c) => c !== 'D').join('')).toBe('12TCZ')
    checkRows(rowsOf(messages))
  }, 90_000)

  it('COPY TO STDOUT', async () => {
    const messages = await stalled('stall-copy', serialize.query(`${COPY} /* stall-copy */`))
    const lines = messages.filter((m) => m.code === 'd').map((m) => m.body.toString('utf8').replace(/\n$/, '').split('\t'))
    checkRows(lines)
  }, 90_000)
})
