/**
 * Rows a masking filter takes in a run are never framed one by one (the framer skips them), yet
 * the recording must count every row the client received: a statement that fails after some rows
 * has no command tag, and its recorded row count is the tunnel's own count. Whatever the reads,
 * with rows masked, rows left as they are and rows that take the decoded path.
 */
import {beforeAll, describe, expect, it} from 'vitest'
import type {MaskingConfig} from '../../src/config/types.js'
import {createMaskingFilterFactory} from '../../src/masking/filter.js'
import type {ProxyHooks, StatementEvent} from '../../src/proxy/seam.js'
import {loadParser} from '../../src/sql/parser.js'
import {encodeDataRow, encodeError, encodeReadyForQuery, encodeRowDescription} from '../../src/wire/backend.js'
import {encodeQuery} from '../../src/wire/frontend.js'
import {codesOf, memoryConnection, randomCuts} from '../helpers/memory-connection.js'
import {seededRandom as random} from '../helpers/seeded-random.js'
import {oneTable, type Column} from './one-table.js'

const COLUMNS: Column[] = [
  ['id', 23, 'int4'],
  ['email', 25, 'text'],
  ['note', 25, 'text'],
]
const {catalog, sql: SQL, fields} = oneTable(COLUMNS)
const masking: MaskingConfig = {unmask: [], mask: [], unmaskColumns: [], strategies: {}, onUntraceable: 'mask'}

beforeAll(async () => {
  await loadParser()
})

function tunnel() {
  const factory = createMaskingFilterFactory({catalog, masking, identity: {groups: [], kind: 'human'}, hashKey: 'k'})
  const events: StatementEvent[] = []
  const hooks: ProxyHooks = {resultFilter: (sql, c, verdict) => factory(sql, c, verdict), previewRows: 2, onStatement: (e) => void events.push(e)}
  return {mem: memoryConnection(hooks), events}
}

function rows(n: number, next: () => number): Buffer[] {
  return Array.from({length: n}, (_, i) => {
    const r = next()
    const note = r < 0.1 ? `call 912-34-5678 ${i}` : r < 0.2 ? `émile ${i}` : `c4ca4238a0b923820dcc509a6f75849b-${String(i).padStart(8, '0')}`
    return encodeDataRow([Buffer.from(String(i)), r < 0.3 ? null : Buffer.from(`user${i}@example.com`), Buffer.from(note)])
  })
}


describe('rows taken in runs are counted', () => {
  for (const mean of [0, 9, 120, 2000]) {
    it(`records every row of a statement that fails after them (reads of ${mean === 0 ? 'the whole reply' : `about ${mean} bytes`})`, () => {
      for (const n of [1, 2, 3, 57, 700]) {
        const next = random(n * 7 + mean)
        const {mem, events} = tunnel()
        mem.fromClient([encodeQuery(SQL)])
        expect(codesOf(mem.upstream.take())).toBe('Q')
        const reply = Buffer.concat([encodeRowDescription(fields()), ...rows(n, next), encodeError({severity: 'ERROR', code: '22012', message: 'division by zero'}), encodeReadyForQuery('I')])
        mem.fromServer(mean === 0 ? [reply] : randomCuts(reply, next, mean))
        expect(mem.conn.closed, mem.logs.join('; ')).toBe(false)
        expect(codesOf(mem.client.take())).toBe(`T${'D'.repeat(n)}EZ`)
        expect(events).toHaveLength(1)
        expect(events[0]!.outcome).toBe('error')
        expect(events[0]!.rows, `${n} rows`).toBe(n)
        expect(events[0]!.preview!.truncated).toBe(n > 2)
      }
    })
  }
})
