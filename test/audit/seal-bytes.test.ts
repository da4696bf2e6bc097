/**
 * The recorder seals each event straight into the bytes it writes (`sealEventBytes`), where the
 * verifier and the shipper work on the line as a string (`sealEvent`). A byte that differs between
 * the two is a session that fails verification, or a chain whose `prev` does not match the line
 * before: every event must come out identical both ways.
 */
import {generateKeyPairSync, sign} from 'node:crypto'
import {describe, expect, it} from 'vitest'
import {ChainState, sealEvent, sealEventBytes, sha256hex, type Signer} from '../../src/audit/chain.js'
import {statementData} from '../../src/audit/events.js'
import {stmt} from './helpers.js'

const {privateKey} = generateKeyPairSync('ed25519')
const signer: Signer = {keyId: 'f'.repeat(32), sign: (message) => sign(null, message, privateKey).toString('base64')}

/** Data whose JSON has multi-byte characters, escapes, a lone surrogate, and sizes around the Buffer pool's limit. */
const DATA: unknown[] = [
  null,
  {sql: 'select 1'},
  {sql: "select 'héllo wörld' -- ünïcode", name: '日本語のテキスト', emoji: '🙂🚀', quote: '"\\\n\t\u0000'},
  {lone: 'a\ud800b', tail: '\udc00'},
  {big: 'x'.repeat(4090)},
  {big: 'é'.repeat(3000)},
  {big: '🙂'.repeat(5000), rows: [[1, 'a'], [null, '€']]},
]

describe('sealing an event into bytes', () => {
  it('gives exactly the line sealEvent gives, newline added, and that line’s hash', () => {
    for (const data of DATA) {
      for (const s of [undefined, signer]) {
        const ev = {type: 'statement', session: 'sess-ü', seq: 7, ts: '2026-12-05T03:00:00.000Z', prev: 'a'.repeat(64), data}
        // Ed25519 signatures are deterministic, so both calls sign alike.
        const line = sealEvent(ev, s)
        const sealed = sealEventBytes(ev, s)
        expect(sealed.bytes.equals(Buffer.from(line + '\n')), JSON.stringify(data)?.slice(0, 60)).toBe(true)
        expect(sealed.hash).toBe(sha256hex(line))
      }
    }
  })

  it('chains alike: appendBytes and append give the same lines and the same prev, event after event', () => {
    const a = new ChainState('sess-1')
    const b = new ChainState('sess-1')
    const ts = new Date('2026-12-05T03:00:00Z')
    for (const [i, data] of DATA.entries()) {
      const s = i % 3 === 0 ? signer : undefined
      expect(a.appendBytes('statement', data, ts, s).toString('utf8')).toBe(b.append('statement', data, ts, s) + '\n')
      expect(a.prev).toBe(b.prev)
      expect(a.seq).toBe(b.seq)
    }
  })
})

describe('a statement event', () => {
  it('keeps the documented member order, with absent members left out', () => {
    const full = statementData(
      stmt('s', 'select $1', {protocol: 'parse', statementName: 'p1', params: ['x'], outcome: 'error', error: {code: '57014', message: 'canceled'}}),
      {class: 'read', decision: 'allow', ruleId: 'r1', approvalId: 'ap-1', tables: ['t'], maskedColumns: ['t.c'], maskedValues: 2, preview: {columns: ['a'], rows: [['1']], truncated: false}},
      20,
    )
    expect(Object.keys(full)).toEqual([
      'connectionId', 'protocol', 'statementName', 'sql', 'normalized', 'fingerprint', 'params', 'class', 'decision', 'ruleId', 'approvalId',
      'startedAt', 'durationMs', 'rows', 'commandTags', 'outcome', 'tables', 'maskedColumns', 'maskedValues', 'error', 'preview',
    ])
    const bare = statementData(stmt('s', 'select 1'), {}, 20)
    expect(Object.keys(bare)).toEqual(['connectionId', 'protocol', 'sql', 'normalized', 'fingerprint', 'decision', 'startedAt', 'durationMs', 'rows', 'commandTags', 'outcome', 'tables', 'maskedColumns'])
    expect(bare).not.toHaveProperty('params')
  })
})
