/**
 * The masking arena is taken back after a chunk's rewritten rows were written (`outputMemory`):
 * the next chunk's rows go where those went. That is sound only while nothing refers to them any
 * more; a client socket that queued the write still does, and its bytes must arrive as written.
 */
import {beforeAll, describe, expect, it} from 'vitest'
import type {MaskingConfig} from '../../src/config/types.js'
import {arena, markOutput, OUTPUT_MEMORY, outputWritten, reserve} from '../../src/masking/arena.js'
import {createMaskingFilterFactory, type MaskingFilter} from '../../src/masking/filter.js'
import {loadParser} from '../../src/sql/parser.js'
import {encodeCopyData, encodeDataRow, encodeReadyForQuery, encodeRowDescription} from '../../src/wire/backend.js'
import {encodeQuery} from '../../src/wire/frontend.js'
import {memoryConnection, MemorySocket} from '../helpers/memory-connection.js'
import {ctx, oneTable, type Column} from './one-table.js'

const COLUMNS: Column[] = [
  ['id', 23, 'int4'],
  ['email', 25, 'text'],
  ['full_name', 25, 'text'],
  ['note', 25, 'text'],
]
const {catalog, sql: SQL, fields} = oneTable(COLUMNS)
const masking: MaskingConfig = {unmask: [], mask: [], unmaskColumns: [], strategies: {}, onUntraceable: 'mask'}

beforeAll(async () => {
  await loadParser()
})

describe('the arena taken back', () => {
  it('reuses what was written since the mark, and nothing without an open mark', () => {
    reserve(10)
    markOutput()
    const first = reserve(100)
    const buffer = arena
    outputWritten()
    expect(reserve(100)).toBe(first)
    expect(arena).toBe(buffer)
    // No mark open: a second `outputWritten` takes nothing back.
    outputWritten()
    expect(reserve(100)).toBe(first + 100)
    // A nested mark takes the outer one: the outer `outputWritten` then takes nothing back.
    markOutput()
    const outer = reserve(50)
    markOutput()
    reserve(50)
    outputWritten()
    outputWritten()
    expect(reserve(1)).toBe(outer + 50)
  })

  it('gives back a whole new arena made after the mark', () => {
    markOutput()
    reserve(200 * 1024)
    reserve(200 * 1024)
    const second = arena
    outputWritten()
    expect(arena).toBe(second)
    expect(reserve(10)).toBe(0)
  })
})

/** A client socket that keeps every write as it is (no copy); `queued` says whether the kernel took it. */
class KeepingSocket extends MemorySocket {
  queued = false
  readonly kept: Buffer[] = []
  override write(b: Buffer): boolean {
    this.kept.push(b)
    return !this.queued
  }
  get writableLength(): number {
    return this.queued ? this.kept.reduce((n, b) => n + b.length, 0) : 0
  }
}


/** CommandComplete with `tag`. */
function commandComplete(tag: string): Buffer {
  const body = Buffer.from(`${tag}\0`)
  const head = Buffer.from([0x43, 0, 0, 0, 0])
  head.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([head, body])
}

const row = (i: number, note: string) => encodeDataRow([Buffer.from(String(i)), Buffer.from(`user${i}@example.com`), Buffer.from(`Person ${i}`), Buffer.from(note)])
const line = (i: number, note: string) => encodeCopyData(Buffer.from(`${i}\tuser${i}@example.com\tPerson ${i}\t${note}\n`))

for (const kind of ['SELECT', 'COPY'] as const) {
  describe(`${kind}: rewritten rows of a queued write`, () => {
    const sql = kind === 'SELECT' ? SQL : 'COPY people TO STDOUT'
    const message = kind === 'SELECT' ? row : line
    // Two chunks of rows of the same lengths: the second's output would land exactly on the first's.
    const chunk = (from: number, note: string) => Buffer.concat(Array.from({length: 200}, (_, k) => message(from + k, note)))
    const head = kind === 'SELECT' ? encodeRowDescription(fields()) : Buffer.from([0x48, 0, 0, 0, 15, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0])
    const tail = Buffer.concat([...(kind === 'COPY' ? [Buffer.from([0x63, 0, 0, 0, 4])] : []), commandComplete(kind === 'SELECT' ? 'SELECT 400' : 'COPY 400'), encodeReadyForQuery('I')])

    /** The bytes the client must receive: each message through the filter on its own. */
    function expected(chunks: Buffer[]): Buffer {
      const factory = createMaskingFilterFactory({catalog, masking, identity: {groups: [], kind: 'human'}, hashKey: 'k'})
      const filter = factory(sql, ctx, {action: 'allow'}) as MaskingFilter
      if (kind === 'SELECT') filter.rowDescription!(fields())
      const out: Buffer[] = [head]
      for (const c of chunks) {
        for (let at = 0; at < c.length; ) {
          const end = at + 1 + c.readInt32BE(at + 1)
          const m = c.subarray(at, end)
          out.push(Buffer.from((kind === 'SELECT' ? filter.dataRowMessage!(m, fields(), 5) : filter.copyDataMessage!(m, 5)) ?? m))
          at = end
        }
      }
      return Buffer.concat([...out, tail])
    }

    function run(queued: boolean) {
      const factory = createMaskingFilterFactory({catalog, masking, identity: {groups: [], kind: 'human'}, hashKey: 'k'})
      const client = new KeepingSocket()
      const {conn, upstream} = memoryConnection({resultFilter: factory, outputMemory: OUTPUT_MEMORY}, client)
      client.kept.length = 0
      client.emit('data', encodeQuery(sql))
      upstream.take()
      const chunks = [chunk(1000, `c4ca4238a0b923820dcc509a6f75849b-first`), chunk(2000, `e4da3b7fbbce2345d7772b0674a318d5-second`)]
      client.queued = queued
      upstream.emit('data', head)
      for (const c of chunks) upstream.emit('data', Buffer.from(c))
      upstream.emit('data', tail)
      expect(conn.closed).toBe(false)
      return {got: Buffer.concat(client.kept), want: expected(chunks), writes: client.kept}
    }

    it('keeps them intact while the socket holds them', () => {
      const {got, want} = run(true)
      expect(got.equals(want)).toBe(true)
    })

    it('writes the next chunk’s rows where the last chunk’s went once the socket took them', () => {
      const {writes, want} = run(false)
      // The copies were made at write time; the views themselves now show the second chunk.
      const [, first, second] = writes
      expect(first!.buffer).toBe(second!.buffer)
      expect(first!.byteOffset).toBe(second!.byteOffset)
      expect(want.length).toBeGreaterThan(0)
    })
  })
}
