/**
 * An unsigned event whose `data` is already encoded (every statement event) is written into its
 * line's bytes as the envelope's head and the data one after the other, the head of each type
 * kept per chain. Any byte that differs from `sealEvent`'s line is a session that fails
 * verification: every line, and every `prev`, must be the same both ways, whatever the data holds,
 * whichever type came before, with signed lines in between.
 */
import {generateKeyPairSync, sign} from 'node:crypto'
import {describe, expect, it} from 'vitest'
import {ChainState, sealEvent, sealEventBytes, sha256hex, type Signer} from '../../src/audit/chain.js'

const {privateKey} = generateKeyPairSync('ed25519')
const signer: Signer = {keyId: 'e'.repeat(32), sign: (message) => sign(null, message, privateKey).toString('base64')}

const DATA: unknown[] = [
  null,
  0,
  'text',
  [],
  {sql: 'select 1'},
  {sql: "select 'héllo wörld' -- ünïcode", name: '日本語のテキスト', emoji: '🙂🚀', quote: '"\\\n\t\u0000'},
  // Lone surrogates at the very start and end of the data's text, next to the envelope.
  '\ud800',
  '\udc00x\ud800',
  {lone: 'a\ud800b', tail: '\udc00'},
  {big: 'x'.repeat(4090)},
  {big: 'é'.repeat(3000)},
  {big: '🙂'.repeat(5000), rows: [[1, 'a'], [null, '€']]},
]

describe('sealing an event whose data is already encoded', () => {
  it('gives exactly the line sealEvent gives, for every data, type and session id', () => {
    for (const session of ['sess-1', 'sess-ü', 'a"b\\c', '\ud800']) {
      for (const type of ['statement', 'approval.requested']) {
        for (const data of DATA) {
          const ev = {type, session, seq: 12345, ts: '2026-12-05T03:00:00.000Z', prev: 'b'.repeat(64), data}
          const line = sealEvent(ev)
          const sealed = sealEventBytes(ev, undefined, JSON.stringify(data))
          expect(sealed.bytes.equals(Buffer.from(line + '\n')), `${session} ${type} ${JSON.stringify(data)?.slice(0, 40)}`).toBe(true)
          expect(sealed.hash).toBe(sha256hex(line))
          // Signed, the data's encoding is not taken apart: the same line as well.
          expect(sealEventBytes(ev, signer, JSON.stringify(data)).bytes.equals(Buffer.from(sealEvent(ev, signer) + '\n'))).toBe(true)
        }
      }
    }
  })

  it('chains alike event after event, as the type changes and signed lines come between', () => {
    for (const session of ['sess-2', 'a"b']) {
      const a = new ChainState(session)
      const b = new ChainState(session)
      const types = ['statement', 'statement', 'approval.requested', 'statement', 'checkpoint', 'statement']
      for (let i = 0; i < 40; i++) {
        const data = DATA[i % DATA.length]
        const type = types[i % types.length]!
        const s = i % 7 === 3 ? signer : undefined
        const ts = new Date(Date.UTC(2026, 11, 5, 3, 0, 0, i * 7))
        const got = a.appendBytes(type, data, ts, s, JSON.stringify(data)).toString('utf8')
        expect(got, `${session} #${i} ${type}`).toBe(b.append(type, data, ts, s) + '\n')
        expect(a.prev).toBe(b.prev)
        expect(a.seq).toBe(b.seq)
      }
    }
  })
})
