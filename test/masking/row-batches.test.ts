/**
 * Rows masked in batches: past the recording's preview rows, the tunnel hands the masking filter
 * every DataRow (or CopyData) message that lies whole in the chunk at once, and skips the frames
 * it took. Whatever the chunking, the client must receive exactly the bytes the row-by-row path
 * gives, the recording the same preview and counts, and nothing of one read may be taken for the
 * next, even when the next read arrives in the same buffer object (a reused read buffer).
 */
import {beforeAll, describe, expect, it} from 'vitest'
import type {MaskingConfig} from '../../src/config/types.js'
import {createMaskingFilterFactory, type MaskingFilter} from '../../src/masking/filter.js'
import type {ProxyHooks, StatementEvent} from '../../src/proxy/seam.js'
import {loadParser} from '../../src/sql/parser.js'
import {encodeCopyData, encodeDataRow, encodeReadyForQuery, encodeRowDescription} from '../../src/wire/backend.js'
import {encodeQuery} from '../../src/wire/frontend.js'
import {Writer} from '../../src/wire/writer.js'
import {codesOf, memoryConnection, randomCuts} from '../helpers/memory-connection.js'
import {ctx, oneTable, type Column} from './one-table.js'
import {seededRandom as random} from '../helpers/seeded-random.js'

const COLUMNS: Column[] = [
  ['id', 23, 'int4'],
  ['email', 25, 'text'],
  ['full_name', 25, 'text'],
  ['note', 25, 'text'],
]
const {catalog, sql: SQL, fields: fieldsIn} = oneTable(COLUMNS)
const COPY_SQL = 'COPY people TO STDOUT'
const PREVIEW = 3

const masking: MaskingConfig = {unmask: [], mask: [], unmaskColumns: [], strategies: {}, onUntraceable: 'mask'}

beforeAll(async () => {
  await loadParser()
})

/** Rows where masking changes nothing (clean notes, NULL e-mail and name) among rows it rewrites, some of them through the decoded path. */
function rowValues(next: () => number, i: number): (string | null)[] {
  const r = next()
  // Notes of every length the copy into the output treats apart: short, 16 to 256 bytes, longer.
  const note = r < 0.1 ? `call 912-34-5678 or ada${i}@example.org` : r < 0.2 ? `émile ${i} ü` : r < 0.3 ? '' : r < 0.4 ? 'lorem '.repeat(i % 70) : `c4ca4238a0b923820dcc509a6f75849b-${String(i).padStart(8, '0')}`
  if (next() < 0.3) return [String(i), null, null, note]
  const email = next() < 0.1 ? `é${i}@exämple.com` : `user${i}@example.com`
  return [String(i), email, next() < 0.1 ? null : `Person ${i}`, note]
}

const tagged = (code: number, build: (w: Writer) => Writer = (w) => w): Buffer => Buffer.from(build(new Writer(64)).finish(code))
const encodeCommandComplete = (tag: string): Buffer => tagged(0x43, (w) => w.cstring(tag))

/** The tunnel with the masking filter and a recording that keeps `PREVIEW` rows; the filters it made. */
function tunnel() {
  const factory = createMaskingFilterFactory({catalog, masking, identity: {groups: [], kind: 'human'}, hashKey: 'k'})
  const made: MaskingFilter[] = []
  const events: StatementEvent[] = []
  const hooks: ProxyHooks = {
    resultFilter: (sql, c, verdict) => {
      const f = factory(sql, c, verdict) as MaskingFilter | undefined
      if (f && sql !== null) made.push(f)
      return f
    },
    previewRows: PREVIEW,
    onStatement: (e) => void events.push(e),
  }
  return {mem: memoryConnection(hooks), made, events, factory}
}


describe('DataRows masked in batches', () => {
  let rows = 400
  const stream = (seed: number) => {
    const next = random(seed)
    const values = Array.from({length: rows}, (_, i) => rowValues(next, i + 1))
    const messages = values.map((v) => encodeDataRow(v.map((x) => (x === null ? null : Buffer.from(x)))))
    const head = encodeRowDescription(fieldsIn(0))
    const tail = Buffer.concat([encodeCommandComplete(`SELECT ${rows}`), encodeReadyForQuery('I')])
    return {messages, head, tail, whole: Buffer.concat([head, ...messages, tail])}
  }

  /** What the client must receive: each row through `dataRowMessage` on its own, as before batches. */
  function expected(seed: number) {
    const {messages, head, tail} = stream(seed)
    const {factory} = tunnel()
    const filter = factory(SQL, ctx, {action: 'allow'}) as MaskingFilter
    filter.rowDescription!(fieldsIn(0))
    const out = messages.map((m) => filter.dataRowMessage!(m, fieldsIn(0), 5) ?? m)
    return {bytes: Buffer.concat([head, ...out, tail]), rows: out, filter}
  }

  const cases: [string, (whole: Buffer, next: () => number) => Buffer[]][] = [
    ['in one read', (whole) => [whole]],
    ['in reads of about 100 bytes', (whole, next) => randomCuts(whole, next, 100)],
    ['in reads of about 7 bytes', (whole, next) => randomCuts(whole, next, 7)],
    ['in reads of about 3,000 bytes', (whole, next) => randomCuts(whole, next, 3000)],
  ]
  for (const [what, cut] of cases) {
    it(`gives the client the bytes, preview and counts of the row-by-row path (${what})`, () => {
      for (const seed of [1, 2, 3]) {
        const want = expected(seed)
        const {mem, made, events} = tunnel()
        mem.fromClient([encodeQuery(SQL)])
        expect(codesOf(mem.upstream.take())).toBe('Q')
        mem.fromServer(cut(stream(seed).whole, random(seed * 31)))
        const got = mem.client.take()
        expect(mem.conn.closed, mem.logs.join('; ')).toBe(false)
        expect(got.equals(want.bytes), `seed ${seed}`).toBe(true)
        expect(made[0]!.maskedValues).toBe(want.filter.maskedValues)
        expect(made[0]!.scannerHits).toEqual(want.filter.scannerHits)
        const preview = events[0]!.preview!
        expect(preview.rows).toEqual(want.rows.slice(0, PREVIEW).map((m) => decodeRow(m)))
        expect(preview.truncated).toBe(true)
      }
    })
  }

  it('gives the same bytes when the rewritten rows of one read fill the shared output buffer more than once', () => {
    rows = 5000
    try {
      const want = expected(9)
      const {mem} = tunnel()
      mem.fromClient([encodeQuery(SQL)])
      mem.upstream.take()
      mem.fromServer([stream(9).whole])
      expect(mem.client.take().equals(want.bytes)).toBe(true)
    } finally {
      rows = 400
    }
  })

  it('reads every row of a read that arrives in the buffer of the one before (a reused read buffer)', () => {
    // Rows of one length, read ten at a time into one buffer object: each read starts with a
    // message at the offset where the one before had its first, in the same buffer.
    const values = Array.from({length: 200}, (_, i) => [String(1000 + i), `user${1000 + i}@example.com`, i % 3 === 0 ? null : `Person ${1000 + i}`, i % 5 === 0 ? `mail ada${1000 + i}@example.org` : 'nothing to see here, ok.'])
    const messages = values.map((v) => encodeDataRow(v.map((x) => (x === null ? Buffer.from('-----------') : Buffer.from(x)))))
    expect(new Set(messages.map((m) => m.length)).size).toBe(1)
    const {factory} = tunnel()
    const reference = factory(SQL, ctx, {action: 'allow'}) as MaskingFilter
    reference.rowDescription!(fieldsIn(0))
    const want = Buffer.concat([encodeRowDescription(fieldsIn(0)), ...messages.map((m) => reference.dataRowMessage!(m, fieldsIn(0), 5) ?? m)])
    const {mem} = tunnel()
    mem.fromClient([encodeQuery(SQL)])
    mem.upstream.take()
    mem.fromServer([encodeRowDescription(fieldsIn(0))])
    const shared = Buffer.alloc(messages[0]!.length * 10)
    for (let i = 0; i < messages.length; i += 10) {
      Buffer.concat(messages.slice(i, i + 10)).copy(shared)
      mem.upstream.emit('data', shared)
    }
    expect(mem.conn.closed, mem.logs.join('; ')).toBe(false)
    expect(mem.client.take().equals(want)).toBe(true)
  })

  it('forwards the rows before a message over the size limit, then refuses it as before', () => {
    const want = expected(5)
    const {mem} = tunnel()
    mem.fromClient([encodeQuery(SQL)])
    mem.upstream.take()
    const {head, messages} = stream(5)
    // A DataRow header announcing 2 MiB, over memoryConnection's 1 MiB limit, after 50 rows in the same read.
    const huge = Buffer.from([0x44, 0, 0x20, 0, 4])
    mem.fromServer([Buffer.concat([head, ...messages.slice(0, 50), huge, messages[50]!])])
    const got = mem.client.take()
    const rowsPart = Buffer.concat([head, ...want.rows.slice(0, 50)])
    expect(got.subarray(0, rowsPart.length).equals(rowsPart)).toBe(true)
    expect(codesOf(got.subarray(rowsPart.length))).toBe('E')
    expect(got.subarray(rowsPart.length).toString('latin1')).toContain('over the limit')
    expect(mem.conn.closed).toBe(true)
  })
})

describe('COPY rows masked in batches', () => {
  let lines = 400
  let delimiter = '\t'
  const sql = () => (delimiter === '\t' ? COPY_SQL : `${COPY_SQL} (DELIMITER '${delimiter}')`)
  const stream = (seed: number) => {
    const next = random(seed)
    const messages = Array.from({length: lines}, (_, i) => {
      const v = rowValues(next, i + 1)
      // Escapes and NULL markers send a line down the decoded path; most lines have none.
      const text = v.map((x) => (x === null ? '\\N' : next() < 0.05 ? `${x}\\t\\\\x` : x)).join(delimiter)
      return encodeCopyData(Buffer.from(`${text}\n`))
    })
    const head = tagged(0x48, (w) => COLUMNS.reduce((x) => x.int16(0), w.byte(0).int16(COLUMNS.length)))
    const tail = Buffer.concat([tagged(0x63), encodeCommandComplete(`COPY ${lines}`), encodeReadyForQuery('I')])
    return {messages, head, tail, whole: Buffer.concat([head, ...messages, tail])}
  }

  function expected(seed: number) {
    const {messages, head, tail} = stream(seed)
    const {factory} = tunnel()
    const filter = factory(sql(), ctx, {action: 'allow'}) as MaskingFilter
    const out = messages.map((m) => filter.copyDataMessage!(m, 5) ?? m)
    return {bytes: Buffer.concat([head, ...out, tail]), filter}
  }

  for (const [what, mean] of [
    ['in one read', 0],
    ['in reads of about 100 bytes', 100],
    ['in reads of about 7 bytes', 7],
  ] as const) {
    it(`gives the client the bytes and counts of the line-by-line path (${what})`, () => {
      for (const seed of [1, 2, 3]) {
        const want = expected(seed)
        const {mem, made} = tunnel()
        mem.fromClient([encodeQuery(COPY_SQL)])
        mem.upstream.take()
        const whole = stream(seed).whole
        mem.fromServer(mean === 0 ? [whole] : randomCuts(whole, random(seed * 17), mean))
        expect(mem.conn.closed, mem.logs.join('; ')).toBe(false)
        expect(mem.client.take().equals(want.bytes), `seed ${seed}`).toBe(true)
        expect(made[0]!.maskedValues).toBe(want.filter.maskedValues)
        expect(made[0]!.scannerHits).toEqual(want.filter.scannerHits)
      }
    })
  }

  for (const d of ['|', ' ', ',']) {
    it(`gives the client the bytes of the line-by-line path with the delimiter ${JSON.stringify(d)}`, () => {
      delimiter = d
      try {
        for (const seed of [4, 5]) {
          const want = expected(seed)
          const {mem} = tunnel()
          mem.fromClient([encodeQuery(sql())])
          mem.upstream.take()
          mem.fromServer(randomCuts(stream(seed).whole, random(seed), 500))
          expect(mem.conn.closed, mem.logs.join('; ')).toBe(false)
          expect(mem.client.take().equals(want.bytes), `seed ${seed}`).toBe(true)
        }
      } finally {
        delimiter = '\t'
      }
    })
  }

  it('gives the same bytes when the rewritten lines of one read fill the shared output buffer more than once', () => {
    lines = 5000
    try {
      const want = expected(9)
      const {mem} = tunnel()
      mem.fromClient([encodeQuery(COPY_SQL)])
      mem.upstream.take()
      mem.fromServer([stream(9).whole])
      expect(mem.client.take().equals(want.bytes)).toBe(true)
    } finally {
      lines = 400
    }
  })

  it('reads every line of a read that arrives in the buffer of the one before (a reused read buffer)', () => {
    const messages = Array.from({length: 200}, (_, i) => encodeCopyData(Buffer.from(`${1000 + i}\tuser${1000 + i}@example.com\tPerson ${1000 + i}\t${i % 5 === 0 ? `mail ada${1000 + i}@example.org` : 'nothing to see here, ok.'}\n`)))
    expect(new Set(messages.map((m) => m.length)).size).toBe(1)
    const {factory} = tunnel()
    const reference = factory(COPY_SQL, ctx, {action: 'allow'}) as MaskingFilter
    const head = tagged(0x48, (w) => COLUMNS.reduce((x) => x.int16(0), w.byte(0).int16(COLUMNS.length)))
    const want = Buffer.concat([head, ...messages.map((m) => reference.copyDataMessage!(m, 5) ?? m)])
    const {mem} = tunnel()
    mem.fromClient([encodeQuery(COPY_SQL)])
    mem.upstream.take()
    mem.fromServer([head])
    const shared = Buffer.alloc(messages[0]!.length * 10)
    for (let i = 0; i < messages.length; i += 10) {
      Buffer.concat(messages.slice(i, i + 10)).copy(shared)
      mem.upstream.emit('data', shared)
    }
    expect(mem.conn.closed, mem.logs.join('; ')).toBe(false)
    expect(mem.client.take().equals(want)).toBe(true)
  })
})

function decodeRow(message: Buffer): (string | null)[] {
  const out: (string | null)[] = []
  const n = message.readInt16BE(5)
  let at = 7
  for (let i = 0; i < n; i++) {
    const len = message.readInt32BE(at)
    at += 4
    out.push(len < 0 ? null : message.toString('utf8', at, at + len))
    if (len > 0) at += len
  }
  return out
}
