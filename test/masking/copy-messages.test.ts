import {beforeAll, describe, expect, it} from 'vitest'
import {Catalog, classifySnapshot} from '../../src/masking/catalog.js'
import {DEFAULT_STRATEGIES} from '../../src/masking/categories.js'
import {maskCopyData, type CopyPlan} from '../../src/masking/copy.js'
import {analyzeText} from '../../src/masking/lineage.js'
import {maskNotice, maskNotification, messageProof, sensitiveNameRules} from '../../src/masking/messages.js'
import {loadParser} from '../../src/sql/parser.js'
import {createMasker} from '../../src/masking/strategies.js'
import type {ValueMasking} from '../../src/masking/values.js'

const catalog = new Catalog(
  classifySnapshot(
    {
      relations: [
        {
          oid: 10,
          schema: 'public',
          name: 'people',
          kind: 'table',
          rowTypeOid: 11,
          columns: ['id', 'full_name', 'email', 'note'].map((name, i) => ({name, attnum: i + 1, typeOid: i === 0 ? 23 : 25, typeName: i === 0 ? 'int4' : 'text'})),
        },
      ],
      types: [],
      functions: [],
    },
    {mask: [], unmaskColumns: []},
  ),
)
const m: ValueMasking = {masker: createMasker('k'), catalog, strategyOf: (c) => DEFAULT_STRATEGIES[c]}
const email = {category: 'email', strategy: 'partial'} as const

function copy(sql: string): CopyPlan['shape'] {
  const r = analyzeText(sql, catalog)
  if (!r.ok || !r.statements[0]!.copy) throw new Error('not a copy')
  return r.statements[0]!.copy
}

beforeAll(async () => {
  await loadParser()
})

describe('COPY rows', () => {
  it('masks text-format fields by position, keeping escapes, NULLs and the line end', () => {
    const plan: CopyPlan = {shape: copy('copy people to stdout'), categories: [undefined, undefined, email, undefined]}
    const out = maskCopyData(Buffer.from('1\tAda\\tL\tada@example.com\t\\N\n'), plan, true, m)
    expect(out?.toString()).toBe('1\tAda\\tL\ta***@example.com\t\\N\n')
    expect(maskCopyData(Buffer.from('2\tBob\t\\N\tnothing\n'), plan, false, m)).toBeUndefined()
  })

  it('masks text-format lines the same with and without escapes in them', () => {
    const plan: CopyPlan = {shape: copy("copy people to stdout (delimiter '|', null 'NULL')"), categories: [undefined, undefined, email, undefined]}
    const mask = (line: string) => maskCopyData(Buffer.from(line), plan, false, m)?.toString()
    // No backslash: fields are cut from the bytes, unmasked ones kept byte for byte.
    expect(mask('1|Zoë|ada@example.com|NULL\r\n')).toBe('1|Zoë|a***@example.com|NULL\r\n')
    expect(mask('2|Bo|NULL|call x.y@example.org\n')).toBe('2|Bo|NULL|call x***@example.org\n')
    expect(mask('3|Cy|cy@example.com|\n')).toBe('3|Cy|c***@example.com|\n')
    expect(mask('4|Di|NULL|order 42 of 2026 shipped\n')).toBeUndefined()
    // With one: the text path, which unescapes and escapes again.
    expect(mask('5|E\\|d|ed@example.com|a\\nb\n')).toBe('5|E\\|d|e***@example.com|a\\nb\n')
    // A replacement holding the delimiter is escaped on either path.
    const all: CopyPlan = {shape: copy("copy people (id, email) to stdout (delimiter '|')"), categories: [undefined, {category: 'email', strategy: 'redact'}]}
    expect(maskCopyData(Buffer.from('6@x\n'), {...all, shape: {...all.shape, delimiter: '@'}}, false, m)?.toString()).toBe('6@redacted\\@masked.invalid\n')
  })

  it('masks CSV with quotes and a custom delimiter, leaving the header line alone', () => {
    const plan: CopyPlan = {shape: copy("copy people to stdout (format csv, header, delimiter '|')"), categories: [undefined, {category: 'person_name', strategy: 'redact'}, email, undefined]}
    expect(maskCopyData(Buffer.from('id|full_name|email|note\n'), plan, true, m)).toBeUndefined()
    const out = maskCopyData(Buffer.from('1|"Lovelace|Ada"|ada@example.com|"say ""hi"""\n'), plan, false, m)
    expect(out?.toString()).toBe('1|[redacted]|a***@example.com|"say ""hi"""\n')
  })

  it('masks every field when the shape is unknown, and scans the rest otherwise', () => {
    const all: CopyPlan = {shape: copy('copy people to stdout'), categories: 'all'}
    expect(maskCopyData(Buffer.from('1\tx\n'), all, false, m)?.toString()).toBe('[masked]\t[masked]\n')
    const scan: CopyPlan = {shape: copy('copy people (id, note) to stdout'), categories: []}
    expect(maskCopyData(Buffer.from('1\tmail me at x.y@example.org\n'), scan, false, m)?.toString()).toBe('1\tmail me at x***@example.org\n')
    // A line of another number of fields than the copied columns cannot be placed: masked whole.
    expect(maskCopyData(Buffer.from('1\tAda\tada@example.com\n'), scan, false, m)?.toString()).toBe('[masked]\t[masked]\t[masked]\n')
  })

  it('masks a whole row copied as one field inside, by position', () => {
    const rules = {byName: new Map([['email', 'email' as const]]), byPosition: [undefined, undefined, 'email' as const, undefined]}
    const plan: CopyPlan = {shape: copy('copy (select p from people p) to stdout'), categories: [{rules}]}
    expect(maskCopyData(Buffer.from('(1,"Ada L",ada@example.com,)\n'), plan, false, m)?.toString()).toBe('(1,"Ada L",a***@example.com,)\n')
  })

  it('sets sensitive binary-format fields to NULL after the signature', () => {
    const header = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)])
    const field = (s: string) => {
      const b = Buffer.alloc(4)
      b.writeInt32BE(Buffer.byteLength(s))
      return Buffer.concat([b, Buffer.from(s)])
    }
    const count = Buffer.from([0, 2])
    const chunk = Buffer.concat([header, count, field('1'), field('ada@example.com')])
    const plan: CopyPlan = {shape: copy('copy people (id, email) to stdout (format binary)'), categories: [undefined, email]}
    const out = maskCopyData(chunk, plan, true, m)!
    expect(out.subarray(0, header.length + 2 + 5)).toEqual(Buffer.concat([header, count, field('1')]))
    expect(out.readInt32BE(header.length + 2 + 5)).toBe(-1)
    expect(out.length).toBe(header.length + 2 + 5 + 4)
  })
})

describe('errors and notices', () => {
  const touching = analyzeText('select * from people', catalog)
  const lineage = touching.ok ? touching.statements[0] : undefined

  it('masks the key of a unique violation by the column it names', () => {
    const out = maskNotice({severity: 'ERROR', code: '23505', message: 'duplicate key value violates unique constraint "people_email_key"', detail: 'Key (email)=(ada@example.com) already exists.', schema: 'public', table: 'people'}, lineage, m)
    // The statement reads sensitive data: the key may be derived from it (`'x@' || replace(email, '@', '.')`), so not partial.
    expect(out?.detail).toBe('Key (email)=(r***@masked.invalid) already exists.')
    const own = maskNotice({severity: 'ERROR', code: '23505', message: 'duplicate key value violates unique constraint "people_email_key"', detail: 'Key (email)=(ada@example.com) already exists.', schema: 'public', table: 'people'}, {...lineage!, touchesSensitive: false}, m)
    expect(own?.detail).toBe('Key (email)=(a***@example.com) already exists.')
  })

  it('masks both keys of an exclusion conflict, duplicated keys and partition keys by column', () => {
    const detail = (d: string) => maskNotice({severity: 'ERROR', code: '23P01', message: 'conflicting key value violates exclusion constraint "x"', detail: d, schema: 'public', table: 'people'}, lineage, m)?.detail
    expect(detail('Key (full_name)=(Ada Lovelace) conflicts with existing key (full_name)=(Grace Hopper).')).toBe('Key (full_name)=([redacted]) conflicts with existing key (full_name)=([redacted]).')
    expect(detail('Key (full_name)=(Ada Lovelace) is duplicated.')).toBe('Key (full_name)=([redacted]) is duplicated.')
    expect(detail('Partition key of the failing row contains (full_name) = (Ada Lovelace).')).toBe('Partition key of the failing row contains (full_name) = ([redacted]).')
  })

  it('masks a failing row by position', () => {
    const out = maskNotice({severity: 'ERROR', code: '23502', message: 'null value in column "note"', detail: 'Failing row contains (1, Ada Lovelace, ada@example.com, null).', schema: 'public', table: 'people'}, lineage, m)
    expect(out?.detail).toBe('Failing row contains (1, [redacted], r***@masked.invalid, null).')
  })

  it('masks the quoted input of a data exception in a statement that reads sensitive data', () => {
    const out = maskNotice({severity: 'ERROR', code: '22P02', message: 'invalid input syntax for type integer: "Ada Lovelace"'}, lineage, m)
    expect(out?.message).toBe('invalid input syntax for type integer: "[masked]"')
  })

  it('leaves messages of statements that read nothing sensitive untouched', () => {
    const sql = 'drop table if exists x'
    const drop = analyzeText(sql, catalog)
    expect(maskNotice({severity: 'NOTICE', code: '00000', message: 'table "x" does not exist, skipping'}, drop.ok ? drop.statements[0] : undefined, m, messageProof(sql, catalog))).toBeUndefined()
  })

  it('keeps quoted names a reading statement wrote or the catalog knows, and masks every other quoted value', () => {
    const sql = 'select nmae, full_name::regclass from people'
    const proof = messageProof(sql, catalog)
    const named = maskNotice({severity: 'ERROR', code: '42703', message: 'column "nmae" does not exist'}, lineage, m, proof)
    expect(named).toBeUndefined()
    const value = maskNotice({severity: 'ERROR', code: '42P01', message: 'relation "ada lovelace" does not exist'}, lineage, m, proof)
    expect(value?.message).toBe('relation "[masked]" does not exist')
    // A value holding quotes of its own cannot smuggle its middle out between two proven names.
    const smuggled = maskNotice({severity: 'ERROR', code: '22P02', message: 'invalid input syntax for type integer: "people" Ada Lovelace "email"'}, lineage, m, proof)
    expect(smuggled?.message).toBe('invalid input syntax for type integer: "[masked]"')
    const twoNames = maskNotice({severity: 'ERROR', code: '42703', message: 'column "nmae" of relation "people" does not exist'}, lineage, m, proof)
    expect(twoNames).toBeUndefined()
  })

  it('masks JSON notification payloads by field name and scans plain ones', () => {
    const json = maskNotification('{"id": 1, "full_name": "Ada Lovelace", "note": "x"}', sensitiveNameRules(catalog), m)
    expect(JSON.parse(json!)).toEqual({id: 1, full_name: '[redacted]', note: 'x'})
    expect(maskNotification('ping ada@example.com', sensitiveNameRules(catalog), m)).toBe('ping a***@example.com')
    expect(maskNotification('job 42 done', sensitiveNameRules(catalog), m)).toBeUndefined()
  })
})
