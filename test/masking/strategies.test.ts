import {describe, expect, it} from 'vitest'
import {Catalog} from '../../src/masking/catalog.js'
import {classifyColumn, normaliseName} from '../../src/masking/categories.js'
import {luhnValid} from '../../src/masking/detectors.js'
import {formatArray, formatRecord, parseArray, parseRecord} from '../../src/masking/pg-text.js'
import {createMasker, initials} from '../../src/masking/strategies.js'
import {maskJson, maskTyped, OID, type ValueMasking} from '../../src/masking/values.js'
import {DEFAULT_STRATEGIES} from '../../src/masking/categories.js'

const masker = createMasker('unit-test-key')

describe('strategies', () => {
  it('partial keeps the useful, harmless part', () => {
    expect(masker.text('alice.martin@example.com', 'email', 'partial')).toBe('a***@example.com')
    expect(masker.text('4242 4242 4242 4242', 'card', 'partial')).toBe('**** **** **** 4242')
    expect(masker.text('912-34-5678', 'national_id', 'partial')).toBe('***-**-5678')
    expect(masker.text('+1-555-123-4567', 'phone', 'partial')).toBe('+*-***-***-**67')
    expect(masker.text('1987-06-15', 'birth_date', 'partial')).toBe('1987-01-01')
    expect(masker.text('Ada Lovelace', 'person_name', 'partial')).toBe('A. L.')
    expect(masker.text(' \t ', 'person_name', 'partial')).toBe('[redacted]')
    expect(masker.text('203.0.113.77', 'ip_address', 'partial')).toBe('203.0.113.0')
    expect(masker.text('DE89370400440532013000', 'bank_account', 'partial')).toBe('DE** **** 3000')
  })

  it('hash is deterministic per key, differs across keys, and keeps the shape', () => {
    const a = masker.text('alice@example.com', 'email', 'hash')
    expect(a).toMatch(/^h_[0-9a-f]{12}@masked\.invalid$/)
    expect(masker.text('alice@example.com', 'email', 'hash')).toBe(a)
    expect(createMasker('another-key').text('alice@example.com', 'email', 'hash')).not.toBe(a)
    expect(masker.text('1987-06-15', 'birth_date', 'hash')).toMatch(/^19\d\d-\d\d-\d\d$/)
    expect(masker.text('10.1.2.3', 'ip_address', 'hash')).toMatch(/^10\.\d+\.\d+\.\d+$/)
    // A hashed card must never look like a real one.
    const card = masker.text('4242424242424242', 'card', 'hash')!
    expect(luhnValid(card.replace(/\D/g, ''))).toBe(false)
  })

  it('redact and null', () => {
    expect(masker.text('secret', 'password', 'redact')).toBe('********')
    expect(masker.text('anything', 'email', 'null')).toBeNull()
  })
})

describe('type-valid masking', () => {
  const m: ValueMasking = {masker, catalog: new Catalog({relations: [], types: [], functions: []}), strategyOf: (c) => DEFAULT_STRATEGIES[c]}

  it('keeps dates, timestamps, numbers, inet, uuid and JSON valid', () => {
    expect(maskTyped('1987-06-15', OID.date, 'birth_date', m)).toBe('1987-01-01')
    expect(maskTyped('1987-06-15', OID.date, 'untraceable', m)).toBe('1900-01-01')
    expect(maskTyped('1987-06-15 10:00:00+02', OID.timestamptz, 'birth_date', m)).toBe('1987-01-01 00:00:00+00')
    expect(maskTyped('123456789', OID.int4, 'national_id', m)).toBe('0')
    expect(maskTyped('123456789', OID.int4, 'national_id', m, 'hash')).toMatch(/^\d+$/)
    expect(maskTyped('10.0.0.1/32', OID.cidr, 'ip_address', m)).toBe('10.0.0.0/32')
    expect(maskTyped('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', OID.uuid, 'token', m)).toBe('00000000-0000-0000-0000-000000000000')
    // A document derived from sensitive values as a whole: its keys may be those values too (`jsonb_object_agg(email, n)`).
    expect(JSON.parse(maskTyped('{"a": "x@y.io", "n": 5}', OID.jsonb, 'email', m, 'redact')!)).toEqual({masked: 'redacted@masked.invalid', masked_2: 0})
    expect(JSON.parse(maskTyped('{"x@y.io": 1, "z@y.io": {"k": "v"}}', OID.jsonb, 'email', m, 'redact')!)).toEqual({masked: 0, masked_2: {masked: 'redacted@masked.invalid'}})
    expect(maskTyped('{a@b.io,c@d.io}', 1009, 'email', m)).toBe('{a***@b.io,c***@d.io}')
  })

  it('masks JSON by field name at any depth and scans the rest', () => {
    const rules = {byName: new Map([['email', 'email' as const]]), byPosition: []}
    const out = maskJson('[{"email": "bob@example.com", "note": "ssn 912-34-5678", "id": 1}]', rules, undefined, m)
    expect(JSON.parse(out!)).toEqual([{email: 'b***@example.com', note: 'ssn ***-**-5678', id: 1}])
    expect(maskJson('{"id": 1}', rules, undefined, m)).toBeUndefined()
  })
})

describe('record and array literals', () => {
  it('round-trips quoting, escapes and NULLs', () => {
    const text = '(1,"Ada Lovelace",,"say ""hi""","back\\\\slash")'
    const fields = parseRecord(text)
    expect(fields).toEqual(['1', 'Ada Lovelace', null, 'say "hi"', 'back\\slash'])
    expect(parseRecord(formatRecord(fields!))).toEqual(fields)
    expect(parseRecord('()')).toEqual([null])
    expect(parseRecord('not a record')).toBeUndefined()
  })

  it('parses nested arrays and NULL elements', () => {
    expect(parseArray('{{a,"b c"},{NULL,"NULL"}}')).toEqual([['a', 'b c'], [null, 'NULL']])
    expect(formatArray(parseArray('{"x,y",z}')!)).toBe('{"x,y",z}')
    expect(parseArray('{unterminated')).toBeUndefined()
  })
})

describe('column classification', () => {
  it.each([
    ['email', 'text', 'email'],
    ['contactEmail', 'varchar', 'email'],
    ['billing_email_address', 'text', 'email'],
    ['mobile_phone', 'text', 'phone'],
    ['ssn', 'text', 'national_id'],
    ['passport_number', 'text', 'national_id'],
    ['card_number', 'text', 'card'],
    ['iban', 'text', 'bank_account'],
    ['password_hash', 'text', 'password'],
    ['api_key', 'text', 'secret'],
    ['refresh_token', 'text', 'token'],
    ['date_of_birth', 'date', 'birth_date'],
    ['first_name', 'text', 'person_name'],
    ['shipping_address', 'text', 'address'],
    ['ip_address', 'inet', 'ip_address'],
    ['seen_from', 'inet', 'ip_address'],
  ])('%s (%s) is %s', (name, type, category) => {
    expect(classifyColumn(name, type)?.category).toBe(category)
  })

  it.each([
    ['emailed_at', 'timestamptz'],
    ['remaining', 'int4'],
    ['status', 'text'],
    ['birth_date', 'int4'],
    ['email', 'bool'],
  ])('%s (%s) is not sensitive', (name, type) => {
    expect(classifyColumn(name, type)).toBeUndefined()
  })

  it('explains itself', () => {
    expect(classifyColumn('email', 'text')?.reason).toBe('name matches /e?mail/')
    expect(classifyColumn('seen_from', 'inet')?.reason).toBe('type is inet')
    expect(normaliseName('HTTPRemoteAddr')).toBe('httpremote_addr')
  })
})

describe('initials', () => {
  it('splits words exactly where /\\s+/ does, Unicode spaces and all', () => {
    const spaces = [...Array(0x10000).keys()].map((c) => String.fromCharCode(c)).filter((ch) => /\s/.test(ch))
    const samples = ['Ada Lovelace', '  grace   hopper ', 'élodie\u00a0durand', 'ß x', '\ud83d\ude00 smile', '', '   ', ...spaces.map((sp) => `jo${sp}ann${sp}${sp}lee`)]
    const byRegex = (v: string) => v.split(/\s+/).filter(Boolean).map((p) => `${p[0]!.toUpperCase()}.`).join(' ')
    for (const v of samples) expect(initials(v), JSON.stringify(v)).toBe(byRegex(v))
  })
})
