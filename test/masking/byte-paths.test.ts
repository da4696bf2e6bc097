/**
 * Masking on bytes: DataRow and COPY text rows are masked without splitting them into decoded
 * values, copying clean columns through and rewriting the usual masks in place. Whatever the
 * value, the bytes a client receives must be exactly those of the general path (every value
 * decoded, masked as text, encoded back), and so must the counts the recording keeps. Each test
 * feeds both paths the same rows, including the values a byte-level shortcut could get wrong.
 */
import {createHash} from 'node:crypto'
import {beforeAll, describe, expect, it} from 'vitest'
import type {MaskingConfig} from '../../src/config/types.js'
import {DEFAULT_STRATEGIES, type MaskingCategory, type MaskingStrategy} from '../../src/masking/categories.js'
import {maskCopyData, maskTextLine, type CopyMask, type CopyPlan} from '../../src/masking/copy.js'
import {bufferNeeds, scanText} from '../../src/masking/detectors.js'
import {createMaskingFilterFactory, type MaskingFilter} from '../../src/masking/filter.js'
import {analyzeText} from '../../src/masking/lineage.js'
import {createMasker} from '../../src/masking/strategies.js'
import type {ValueMasking} from '../../src/masking/values.js'
import {loadParser} from '../../src/sql/parser.js'
import {ctx, oneTable, type Column} from './one-table.js'
import {decodeDataRow, encodeDataRow} from '../../src/wire/backend.js'
import {ProtocolError} from '../../src/wire/framer.js'
import {seededRandom as random} from '../helpers/seeded-random.js'

/** Masked as e-mails (text and varchar), a person's name, a phone; `note` only scanned; `ssn` a number masked. */
const COLUMNS: Column[] = [
  ['id', 23, 'int4'],
  ['email', 25, 'text'],
  ['full_name', 25, 'text'],
  ['note', 25, 'text'],
  ['contact_email', 1043, 'varchar'],
  ['phone', 25, 'text'],
  ['ssn', 23, 'int4'],
  ['last_name', 1042, 'bpchar'],
]
const {catalog, sql: SQL, fields: fieldsIn} = oneTable(COLUMNS)

/** Values where a shortcut on bytes could differ from the decoded text. */
const TRICKY = [
  '',
  ' ',
  '@',
  'a@',
  '@b.com',
  ' @b.com',
  'ada@example.com',
  '  ada@example.com  ',
  'a@b@c.example.org',
  'é@example.com',
  'ada@exämple.com',
  '\u00a0ada@example.com\u00a0',
  '\u3000ada@example.com',
  '\tada@example.com\n',
  'ada@example.com\r',
  'x\u2028ada@example.com',
  'Ada Lovelace',
  '  Ada   King  ',
  'ÉMILE ZOLA',
  'call 912-34-5678 or ada.l@example.org',
  'c4ca4238a0b923820dcc509a6f75849b-00000001',
  'a87ff679a2f3e71d9181a67b7542122c-4242424242424242',
  'é 4242 4242 4242 4242',
  'señor ada@example.com',
  '+44 20 7946 0958',
  '555-123-4567',
  'AKIAABCDEFGHIJKLMNOP',
  'ghp_' + 'a'.repeat(36),
  'a long note that is longer than the short copy loop handles, with ada@example.com in the middle of it',
  'x'.repeat(200) + '@' + 'y'.repeat(60) + '.com',
  'back\\slash ada@example.com',
  'tab\there ada@example.com',
  'pipe|star*at@ ada@example.com',
  '\\N',
  'NULL',
]
const ALPHABET = ['a', 'Z', 'q', '0', '4', '9', '@', '@', ' ', ' ', '-', '.', '+', '(', ')', '/', '*', '|', '\\', '\t', '\n', '\r', 'é', '\u00a0', '😀', '_', 'AKIA', 'ghp_', 'example.com']

function randomText(next: () => number): string {
  if (next() < 0.4) return TRICKY[Math.floor(next() * TRICKY.length)]!
  let s = ''
  const n = Math.floor(next() * 40)
  for (let i = 0; i < n; i++) s += next() < 0.3 ? String(Math.floor(next() * 1e6)) : ALPHABET[Math.floor(next() * ALPHABET.length)]!
  return s
}

function randomValue(next: () => number): Buffer | null {
  const r = next()
  if (r < 0.08) return null
  // Bytes that are no UTF-8 at all: decoded they become U+FFFD.
  if (r < 0.12) return Buffer.from([0x61, 0xff, 0x40, 0x62, 0xc3, 0x2e, 0x63, 0x6f, 0x6d])
  return Buffer.from(randomText(next), 'utf8')
}

beforeAll(async () => {
  await loadParser()
})

const STRATEGY_SETS: Partial<Record<MaskingCategory, MaskingStrategy>>[] = [
  {},
  {email: 'redact', person_name: 'partial'},
  {email: 'null', person_name: 'null', phone: 'null'},
  {email: 'hash', person_name: 'hash', national_id: 'hash'},
]

function filters(strategies: Partial<Record<MaskingCategory, MaskingStrategy>>): [MaskingFilter, MaskingFilter] {
  const masking: MaskingConfig = {unmask: [], mask: [], unmaskColumns: [], strategies, onUntraceable: 'mask'}
  const factory = createMaskingFilterFactory({catalog, masking, identity: {groups: [], kind: 'human'}, hashKey: 'k'})
  return [factory(SQL, ctx, {action: 'allow'}) as MaskingFilter, factory(SQL, ctx, {action: 'allow'}) as MaskingFilter]
}

describe('DataRow on bytes', () => {
  for (const [i, strategies] of STRATEGY_SETS.entries()) {
    for (const [what, fields] of [
      ['text format', fieldsIn(0)],
      ['binary format', fieldsIn(1)],
      ['no RowDescription', undefined],
    ] as const) {
      it(`gives the bytes and counts of the value path (${what}, strategies ${JSON.stringify(strategies)})`, () => {
        const [bytes, values] = filters(strategies)
        if (fields) {
          bytes.rowDescription!(fields)
          values.rowDescription!(fields)
        }
        const next = random(17 + i)
        const kept: [Buffer, string][] = []
        let changed = 0
        for (let row = 0; row < 3000; row++) {
          // Now and then a row shorter or longer than its description, as a broken server might send.
          const width = next() < 0.05 ? Math.floor(next() * (COLUMNS.length + 3)) : COLUMNS.length
          const body = encodeDataRow(Array.from({length: width}, () => randomValue(next))).subarray(5)
          const out = bytes.dataRowMessage!(body, fields)
          const reference = values.dataRow!(decodeDataRow(body), fields)
          expect(out && Buffer.from(out).toString('hex'), `row ${row}: ${JSON.stringify(decodeDataRow(body).map((v) => v?.toString()))}`).toEqual(reference && encodeDataRow(reference).toString('hex'))
          if (out) {
            changed++
            kept.push([out, out.toString('hex')])
          }
        }
        expect(changed).toBeGreaterThan(1000)
        expect(bytes.maskedValues).toBe(values.maskedValues)
        expect(bytes.scannerHits).toEqual(values.scannerHits)
        expect(bytes.maskedColumns).toEqual(values.maskedColumns)
        // Rewritten rows share buffers: none may change once handed out.
        for (const [out, hex] of kept) expect(out.toString('hex')).toBe(hex)
      })
    }
  }

  it('masks an e-mail column written in non-ASCII text, and finds an e-mail after a multi-byte character', () => {
    const [filter] = filters({})
    const fields = fieldsIn(0)
    filter.rowDescription!(fields)
    const values = ['1', 'émile@example.com', 'Émile Zola', 'señor ada@example.com', ' ', '', null, 'Zola'].map((v) => (v === null ? null : Buffer.from(v)))
    const out = decodeDataRow(filter.dataRowMessage!(encodeDataRow(values).subarray(5), fields)!.subarray(5)).map((v) => v?.toString())
    expect(out).toEqual(['1', 'é***@example.com', '[redacted]', 'señor a***@example.com', 'redacted@masked.invalid', '+0-000-000-0000', undefined, '[redacted]'])
  })

  it('records the masked columns of rows without a RowDescription once per result, not once per row', () => {
    const [filter] = filters({})
    const values = COLUMNS.map((_, i) => Buffer.from(i === 0 ? '1' : 'ada@example.com'))
    for (let row = 0; row < 1000; row++) {
      const out = decodeDataRow(filter.dataRowMessage!(encodeDataRow(values).subarray(5), undefined)!.subarray(5))
      expect(out.slice(1).filter((v) => v?.toString().includes('ada@example.com'))).toEqual([])
    }
    expect(filter.maskedValues).toBe(1000 * (COLUMNS.length - 1))
    expect(filter.maskedColumns.length).toBeLessThanOrEqual(COLUMNS.length)
  })

  it('refuses a truncated or malformed row as the value path does', () => {
    const [filter] = filters({})
    const fields = fieldsIn(0)
    filter.rowDescription!(fields)
    const body = encodeDataRow([Buffer.from('1'), Buffer.from('ada@example.com')]).subarray(5)
    expect(() => filter.dataRowMessage!(body.subarray(0, body.length - 3), fields)).toThrow(ProtocolError)
    const negative = Buffer.from(body)
    negative.writeInt32BE(-2, 2)
    expect(() => filter.dataRowMessage!(negative, fields)).toThrow(ProtocolError)
  })
})

describe('COPY text rows on bytes', () => {
  const shape = (sql: string): CopyPlan['shape'] => {
    const r = analyzeText(sql, catalog)
    if (!r.ok || !r.statements[0]!.copy) throw new Error('not a copy')
    return r.statements[0]!.copy
  }
  const escape = (s: string, delimiter: string) => {
    let out = s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t')
    if (delimiter !== '\t') out = out.split(delimiter).join(`\\${delimiter}`)
    return out
  }
  const masks: (CopyMask | undefined)[] = [
    undefined,
    {category: 'email', strategy: 'partial'},
    {category: 'person_name', strategy: 'redact'},
    undefined,
    {category: 'email', strategy: 'null'},
    {category: 'phone', strategy: 'partial'},
    {category: 'national_id', strategy: 'hash'},
    {category: 'email', strategy: 'redact'},
  ]

  for (const delimiter of ['\t', '|', '*', '@', ',', ' ']) {
    for (const categories of [masks, 'all' as const]) {
      it(`gives the bytes and counts of the text path (delimiter ${JSON.stringify(delimiter)}, ${categories === 'all' ? 'every field masked' : 'by column'})`, () => {
        const options = delimiter === '\t' ? '' : ` (delimiter '${delimiter}')`
        const plan: CopyPlan = {shape: shape(`copy people to stdout${options}`), categories}
        let bytesMasked = 0
        let textMasked = 0
        const hits: string[][] = [[], []]
        const m = (count: () => void, into: string[]): ValueMasking => ({
          masker: createMasker('k'),
          catalog,
          strategyOf: (c) => DEFAULT_STRATEGIES[c],
          onMasked: count,
          onFinding: (f) => void into.push(f.detector),
        })
        const byBytes = m(() => void bytesMasked++, hits[0]!)
        const byText = m(() => void textMasked++, hits[1]!)
        const next = random(delimiter.charCodeAt(0))
        const kept: [Buffer, string][] = []
        for (let row = 0; row < 3000; row++) {
          const line = `${masks.map(() => (next() < 0.08 ? '\\N' : escape(randomText(next), delimiter))).join(delimiter)}${next() < 0.9 ? '\n' : next() < 0.5 ? '\r\n' : ''}`
          const out = maskCopyData(Buffer.from(line, 'utf8'), plan, false, byBytes)
          const reference = maskTextLine(line, plan, byText)
          // Compared as bytes: a reference holding half a surrogate pair is written as U+FFFD.
          expect(out && Buffer.from(out).toString('hex'), `line ${row}: ${JSON.stringify(line)}`).toEqual(reference === undefined ? undefined : Buffer.from(reference, 'utf8').toString('hex'))
          if (out) kept.push([out, out.toString('hex')])
        }
        expect(kept.length).toBeGreaterThan(1000)
        expect(bytesMasked).toBe(textMasked)
        expect(hits[0]).toEqual(hits[1])
        for (const [out, hex] of kept) expect(out.toString('hex')).toBe(hex)
      })
    }
  }
})

describe('the prefilter on bytes', () => {
  // Texts around the digit-run needs: digits in stretches, the separators detectors allow between
  // them, letters, `_` and non-ASCII characters before and inside them.
  const PIECES = ['4242', '4', '0', '9', '12', '555', ' ', ' ', '-', '-', '.', '(', ')', '/', '+', 'a', 'f', 'c4', 'ab12', 'e', 'eyJ', 'q_', 'Z', 'DE', '_', 'é', '€', '\t', '@', 'x.y', '.com']

  it('never skips a detector that would find something: a card number after a letter, a word, a `_` or a non-ASCII character', () => {
    const next = random(7)
    let found = 0
    for (let n = 0; n < 20_000; n++) {
      let text = ''
      const count = 3 + Math.floor(next() * 16)
      for (let i = 0; i < count; i++) text += PIECES[Math.floor(next() * PIECES.length)]!
      const all = scanText(text, ~0)
      expect(scanText(text), text).toEqual(all)
      if (all.length > 0) found++
    }
    expect(found).toBeGreaterThan(150)
    for (const text of ['é4242424242424242', 'x4242 4242 4242 4242', 'ab12-4242-4242-4242-4242', '€4242-4242-4242-4242', 'c4ca4238 4242424242424242', 'f00d-4242 4242 4242 4242']) {
      expect(scanText(text).map((f) => f.detector), text).toEqual(['card-luhn'])
    }
  })

  it('passes the benchmark note over without looking further, unless a card number follows the hex', () => {
    for (let i = 1; i <= 2000; i++) {
      const note = `${createHash('md5').update(String(i)).digest('hex')}-${String(i).padStart(8, '0')}`
      expect(scanText(note), note).toEqual([])
    }
    expect(bufferNeeds(Buffer.from('a87ff679a2f3e71d9181a67b75421229-4242424242424242'))).not.toBe(0)
  })
})
