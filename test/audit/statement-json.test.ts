/**
 * Statement events are encoded by `statementJson`, which writes the members itself and reuses the
 * groups of members a session's last statement had in common with this one. What it writes is what
 * is hashed, signed and read back: it must be exactly `JSON.stringify` of the same data, for every
 * member present, absent or changed from one statement to the next, or a reader gets another value
 * than the tunnel saw.
 */
import {describe, expect, it} from 'vitest'
import {statementData, statementJson, StatementJsonMemo, type Normalized, type StatementData, type StatementDetails} from '../../src/audit/events.js'
import type {StatementEvent} from '../../src/proxy/seam.js'
import {stmt} from './helpers.js'

type Variant = {ev?: Partial<StatementEvent>; details?: StatementDetails; norm?: Normalized}

const BASE: Variant = {
  ev: {protocol: 'parse', statementName: 'P_0', params: ['1'], durationMs: 0.0613},
  details: {class: 'read', decision: 'allow', ruleId: 'default.allow-read', tables: ['pgbench_accounts'], maskedColumns: [], maskedValues: 0, preview: {columns: ['abalance'], rows: [['0']], truncated: false}},
  norm: {normalized: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1', fingerprint: '348bee4e67e86ca6'},
}

/** One member changed at a time, each to values JSON encodes with care (escapes, non-ASCII, lone surrogates, odd numbers). */
const CHANGES: Variant[] = [
  {ev: {connectionId: 2}},
  {ev: {connectionId: 2, protocol: 'simple', statementName: undefined, params: undefined}},
  {ev: {statementName: 'P_1'}},
  {ev: {statementName: 'name "quoted" \\ ü'}},
  {ev: {sql: 'SELECT abalance FROM pgbench_accounts WHERE aid = 7'}},
  {ev: {sql: 'select \'héllo\'\n\t"x" \u0000 \ud800 🙂'}},
  {ev: {sql: 'select 1 -- ,"normalized":"x","fingerprint":"y"'}},
  {norm: {normalized: null, fingerprint: null}},
  {norm: {normalized: 'select $1 /* ,"normalized": */', fingerprint: 'ab'}},
  {norm: {normalized: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1', fingerprint: 'other'}},
  {norm: {normalized: 'other', fingerprint: '348bee4e67e86ca6'}},
  {ev: {params: [null, '"', 'é']}},
  {ev: {params: []}},
  {details: {...BASE.details, class: undefined}},
  {details: {...BASE.details, class: 'write'}},
  {details: {...BASE.details, decision: 'deny', ruleId: 'r "1"'}},
  {details: {...BASE.details, ruleId: undefined}},
  {details: {...BASE.details, approvalId: 'ap-1', decision: 'approved'}},
  {ev: {startedAt: new Date('2026-12-05T06:00:00.123Z')}},
  {ev: {startedAt: new Date(8.64e15)}},
  {ev: {durationMs: Number.NaN}},
  {ev: {durationMs: 1e21}},
  {ev: {durationMs: -0}},
  {ev: {durationMs: 0.1 + 0.2}},
  {ev: {rows: 0}},
  {ev: {rows: 123456789}},
  {ev: {commandTags: []}},
  {ev: {commandTags: ['SELECT 1', 'UPDATE 2']}},
  {ev: {commandTags: ['SELECT 2']}},
  {ev: {outcome: 'error', error: {code: '57014', message: 'canceling "statement" ü'}}},
  {ev: {outcome: 'rejected'}, details: {...BASE.details, decision: 'deny'}},
  {ev: {suspended: true}},
  {ev: {suspended: false}},
  {ev: {executes: [{name: 'wipe', sql: 'delete from "t" where id > $1 -- é'}]}},
  {ev: {executes: [{name: 'a', sql: 'execute b'}, {name: 'b', sql: 'select 1'}]}},
  {details: {...BASE.details, tables: []}},
  {details: {...BASE.details, tables: ['public.a"b', 'ü']}},
  {details: {...BASE.details, tables: ['pgbench_accounts', 'pgbench_branches']}},
  {details: {...BASE.details, tables: undefined}},
  {details: {...BASE.details, maskedColumns: ['users.email (email)']}},
  {details: {...BASE.details, maskedColumns: ['users.email (email)', 'users.ssn (national_id)']}},
  {details: {...BASE.details, maskedValues: undefined}},
  {details: {...BASE.details, maskedValues: 3}},
  {details: {...BASE.details, error: {code: '42501', message: 'permission "denied"'}}},
  {details: {...BASE.details, preview: undefined}},
  {details: {...BASE.details, preview: {columns: ['a', 'b "c"'], rows: [['1', null], [null, '🙂\n']], truncated: true}}},
  {details: {...BASE.details, preview: {columns: [], rows: [], truncated: false}}},
  {details: {...BASE.details, params: ['<not recorded>']}},
]

function dataOf(v: Variant): StatementData {
  const norm = {...BASE.norm!, ...v.norm}
  return statementData(stmt('s', 'SELECT abalance FROM pgbench_accounts WHERE aid = $1', {...BASE.ev, ...v.ev}), v.details ?? BASE.details!, 20, () => norm)
}

describe('statementJson', () => {
  it('writes exactly what JSON.stringify writes, for every member present, absent or unusual', () => {
    for (const v of [BASE, ...CHANGES, {ev: {protocol: 'simple' as const, statementName: undefined, params: undefined}, details: {}}]) {
      const d = dataOf(v)
      expect(statementJson(d), JSON.stringify(v)).toBe(JSON.stringify(d))
    }
  })

  it('with a session memo, still writes exactly that when each member changes from one statement to the next and back', () => {
    const memo = new StatementJsonMemo()
    let n = 0
    for (const change of CHANGES) {
      // The base, then one member changed, the same change again (the memo's hit), then the base again.
      for (const v of [BASE, change, change, BASE]) {
        const d = dataOf(v)
        expect(statementJson(d, memo), `${JSON.stringify(change)} #${n++}`).toBe(JSON.stringify(d))
      }
    }
    // Every pair of changes, one after the other: a group changed by the one before must not leak into the next.
    for (const a of CHANGES) {
      for (const b of CHANGES) {
        const da = dataOf(a)
        const db = dataOf(b)
        expect(statementJson(da, memo)).toBe(JSON.stringify(da))
        expect(statementJson(db, memo)).toBe(JSON.stringify(db))
      }
    }
  })

  it('does not reuse an array the caller changed in place since the last statement', () => {
    const memo = new StatementJsonMemo()
    const tables = ['a']
    const d1 = dataOf({details: {...BASE.details, tables}})
    expect(statementJson(d1, memo)).toBe(JSON.stringify(d1))
    tables.push('b')
    const d2 = dataOf({details: {...BASE.details, tables}})
    expect(statementJson(d2, memo)).toBe(JSON.stringify(d2))
    expect(JSON.parse(statementJson(d2, memo)).tables).toEqual(['a', 'b'])
  })
})
