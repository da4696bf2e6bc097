/**
 * A session's statement events keep the encoding of the last preview (a statement run again mostly
 * returns the same first rows). The recorded bytes must stay exactly `JSON.stringify`'s whatever
 * changes between two statements: one cell, a NULL against the text 'null', a column's name, the
 * truncation flag, a row more or fewer, a row's width, arrays changed in place after they were
 * recorded, previews too large to keep, and previews of another shape.
 */
import {describe, expect, it} from 'vitest'
import {statementData, statementJson, StatementJsonMemo, type ResultPreview, type StatementData} from '../../src/audit/events.js'
import {stmt} from './helpers.js'

const data = (preview: ResultPreview | undefined): StatementData =>
  statementData(stmt('s', 'SELECT abalance FROM pgbench_accounts WHERE aid = $1', {protocol: 'parse', statementName: 'P_0'}), {decision: 'allow', tables: ['pgbench_accounts'], maskedColumns: [], preview}, 20, () => ({normalized: null, fingerprint: null}))

const BASE: ResultPreview = {columns: ['abalance'], rows: [['0']], truncated: false}
const wide = (v: string): ResultPreview => ({columns: Array.from({length: 10}, (_, i) => `c${i}`), rows: Array.from({length: 10}, (_, r) => Array.from({length: 10}, (_, c) => (r === 9 && c === 9 ? v : `${r}.${c}`))), truncated: true})

const PREVIEWS: (ResultPreview | undefined)[] = [
  BASE,
  {columns: ['abalance'], rows: [['1']], truncated: false},
  {columns: ['abalance'], rows: [[null]], truncated: false},
  {columns: ['abalance'], rows: [['null']], truncated: false},
  {columns: ['abalance'], rows: [['0']], truncated: true},
  {columns: ['balance'], rows: [['0']], truncated: false},
  {columns: ['abalance'], rows: [['0'], ['0']], truncated: false},
  {columns: ['abalance'], rows: [], truncated: false},
  {columns: ['abalance', 'x'], rows: [['0', '0']], truncated: false},
  {columns: ['abalance'], rows: [['0', 'extra']], truncated: false},
  {columns: [], rows: [], truncated: false},
  {columns: ['a"b'], rows: [['🙂\n"\\']], truncated: false},
  undefined,
  wide('x'),
  wide('y'),
  // Not of the shape previews are made with: encoded as JSON.stringify encodes them, never kept.
  {columns: ['abalance'], rows: [[0 as unknown as string]], truncated: false},
  {columns: ['abalance'], rows: [['0']], truncated: false, extra: 1} as ResultPreview,
  {rows: [['0']], columns: ['abalance'], truncated: false} as ResultPreview,
  {columns: ['abalance'], rows: [{0: '0', length: 1} as unknown as string[]], truncated: false},
  Object.assign(Object.create({inherited: 'x'}) as object, {columns: ['abalance'], rows: [['0']], truncated: false}) as ResultPreview,
]

describe('the preview kept by a session memo', () => {
  it('gives exactly JSON.stringify for every preview after every other, each twice', () => {
    const memo = new StatementJsonMemo()
    for (const a of PREVIEWS) {
      for (const b of PREVIEWS) {
        for (const p of [a, a, b, b]) {
          const d = data(p)
          expect(statementJson(d, memo), `${JSON.stringify(a)} then ${JSON.stringify(b)}`).toBe(JSON.stringify(d))
        }
      }
    }
  })

  it('does not reuse a preview whose arrays were changed in place after it was recorded', () => {
    const memo = new StatementJsonMemo()
    const row: (string | null)[] = ['0']
    const columns = ['abalance']
    const rows = [row]
    const p: ResultPreview = {columns, rows, truncated: false}
    const d1 = data(p)
    expect(statementJson(d1, memo)).toBe(JSON.stringify(d1))
    row[0] = '42'
    expect(JSON.parse(statementJson(data(p), memo)).preview.rows).toEqual([['42']])
    columns[0] = 'other'
    expect(JSON.parse(statementJson(data(p), memo)).preview.columns).toEqual(['other'])
    rows.push(['7'])
    expect(JSON.parse(statementJson(data(p), memo)).preview.rows).toEqual([['42'], ['7']])
    row.push('x')
    const d = data(p)
    expect(statementJson(d, memo)).toBe(JSON.stringify(d))
  })
})
