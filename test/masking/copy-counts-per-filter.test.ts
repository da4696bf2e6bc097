/**
 * A statement filter counts the values it replaces in its own `ValueMasking` object (one class for
 * every filter, so that COPY's line code sees one call target and one map in every statement).
 * Filters whose COPY lines interleave, through the batch path and line by line, must each give
 * the bytes and the count they give alone: a count kept anywhere shared (a module's object, the
 * object kept to hold the class's map) would mix them.
 */
import {beforeAll, describe, expect, it} from 'vitest'
import type {MaskingConfig} from '../../src/config/types.js'
import {createMaskingFilterFactory, type MaskingFilter} from '../../src/masking/filter.js'
import {loadParser} from '../../src/sql/parser.js'
import {encodeCopyData} from '../../src/wire/backend.js'
import {ctx, oneTable, type Column} from './one-table.js'

const COLUMNS: Column[] = [
  ['id', 23, 'int4'],
  ['email', 25, 'text'],
  ['full_name', 25, 'text'],
  ['note', 25, 'text'],
]

beforeAll(async () => {
  await loadParser()
})

function factory() {
  const t = oneTable(COLUMNS)
  const masking: MaskingConfig = {unmask: [], mask: [], unmaskColumns: [], strategies: {}, onUntraceable: 'mask'}
  const make = createMaskingFilterFactory({catalog: t.catalog, masking, identity: {groups: [], kind: 'human'}, hashKey: 'k'})
  return () => make('copy people to stdout', ctx, {action: 'allow'}) as MaskingFilter
}

/** `rows` COPY lines from `from` on, as one read of CopyData messages; every `nullEvery`-th e-mail is NULL. */
function read(from: number, rows: number, nullEvery: number): Buffer {
  return Buffer.concat(
    Array.from({length: rows}, (_, i) => {
      const g = from + i
      const email = g % nullEvery === 0 ? '\\N' : `user${g}@example.com`
      return encodeCopyData(Buffer.from(`${g}\t${email}\tPerson ${g}\tnote ${g}\n`))
    }),
  )
}

/** Masks `source` through `f`'s batch path from `start`; returns the bytes out and where it stopped. */
function batch(f: MaskingFilter, source: Buffer): Buffer {
  const out: Buffer[] = []
  const end = f.copyDataMessages!(source, 0, 1 << 20, out)
  expect(end).toBe(source.length)
  return Buffer.concat(out)
}

describe('COPY counts of filters whose lines interleave', () => {
  it('gives each filter the bytes and the count of replaced values it gives alone', () => {
    const make = factory()
    const plans = [
      {rows: 40, nullEvery: 5},
      {rows: 25, nullEvery: 3},
      {rows: 60, nullEvery: 1_000},
    ]
    const reads = plans.map((p, k) => Array.from({length: 4}, (_, r) => read(1 + k * 10_000 + r * p.rows, p.rows, p.nullEvery)))
    const alone = plans.map(() => make())
    const expected = reads.map((rs, k) => rs.map((r) => batch(alone[k]!, r).toString('hex')))
    const together = plans.map(() => make())
    const got: string[][] = plans.map(() => [])
    for (let r = 0; r < 4; r++) {
      for (let k = 0; k < plans.length; k++) {
        // Every other read of the middle filter line by line (the path a row takes outside a batch).
        if (k === 1 && r % 2 === 1) {
          const parts: Buffer[] = []
          for (let at = 0; at < reads[k]![r]!.length; ) {
            const length = reads[k]![r]!.readInt32BE(at + 1)
            parts.push(together[k]!.copyDataMessage!(reads[k]![r]!, at + 5, at + 1 + length) ?? reads[k]![r]!.subarray(at, at + 1 + length))
            at += 1 + length
          }
          got[k]!.push(Buffer.concat(parts).toString('hex'))
        } else {
          got[k]!.push(batch(together[k]!, reads[k]![r]!).toString('hex'))
        }
      }
    }
    expect(got).toEqual(expected)
    for (const [k, p] of plans.entries()) {
      // The e-mail and the name of every row are replaced, but for the NULL e-mails.
      const rows = 4 * p.rows
      const nullEmails = Array.from({length: rows}, (_, i) => 1 + k * 10_000 + i).filter((g) => g % p.nullEvery === 0).length
      expect(alone[k]!.maskedValues).toBe(2 * rows - nullEmails)
      expect(together[k]!.maskedValues).toBe(alone[k]!.maskedValues)
    }
  })
})
