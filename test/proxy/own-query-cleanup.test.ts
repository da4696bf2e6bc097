/**
 * The tunnel's own query (reading a session's settings for a statement held for approval) prepares
 * a statement under a name of its own. An error at its Bind or Execute (a Ctrl-C's cancel, the
 * session's statement_timeout) makes the server skip the Closes after it, up to the Sync; outside a
 * transaction the session goes on, and kept the tunnel's prepared statement, which the client could
 * list and EXECUTE. A Close of each statement after the Sync, answered in a batch of its own, takes
 * it away whatever the first batch did. The server's side is scripted here: a real server fails
 * such a read at Execute only by timing (test/approvals/own-query-cancel.test.ts has the cancel at
 * Parse).
 */
import {describe, expect, it} from 'vitest'
import {OwnQuery, type OwnResults} from '../../src/proxy/own-query.js'
import {ProtocolDesync} from '../../src/proxy/protocol-state.js'
import {Framer, type Frame} from '../../src/wire/framer.js'
import {decodeDescribeOrClose} from '../../src/wire/frontend.js'
import {server} from '../helpers/wire-encode.js'

const frames = (bufs: Buffer[]): Frame[] => {
  const out: Frame[] = []
  const f = new Framer({maxMessageSize: 1 << 20})
  for (const b of bufs) f.push(b, (x) => out.push({code: x.code, body: Buffer.from(x.body), raw: Buffer.from(x.raw)}))
  return out
}

interface Run {
  sent: Frame[]
  /** After which reply (its index) the query answered, if it did. */
  settledAfter: number | undefined
  outcome: Promise<OwnResults | Error>
}

function run(replies: Buffer[]): Run {
  let settle!: (v: OwnResults | Error) => void
  const outcome = new Promise<OwnResults | Error>((r) => (settle = r))
  let settled = false
  const q = new OwnQuery(['select 1'], true, 'I', (r) => ((settled = true), settle(r)), (e) => ((settled = true), settle(e)))
  const r: Run = {sent: frames(q.messages()), settledAfter: undefined, outcome}
  try {
    for (const [i, frame] of frames(replies).entries()) {
      q.take(frame)
      if (settled && r.settledAfter === undefined) r.settledAfter = i
    }
  } catch {
    // A desync is thrown and given to the reject as well.
  }
  return r
}

const P = server.parseComplete()
const B = server.bindComplete()
const C = server.closeComplete()

describe("the tunnel's own query leaves no prepared statement in the session", () => {
  it('closes its statement again after the Sync, in a batch of its own', () => {
    const {sent} = run([])
    const codes = sent.map((f) => String.fromCharCode(f.code)).join('')
    expect(codes).toBe('PBECCSCS')
    const closes = sent.filter((f) => f.code === 'C'.charCodeAt(0)).map((f) => decodeDescribeOrClose(f.body, 'Close'))
    const parse = sent[0]!.body.subarray(0, sent[0]!.body.indexOf(0)).toString()
    expect(closes).toEqual([{target: 'P', name: parse}, {target: 'S', name: parse}, {target: 'S', name: parse}])
  })

  it('answers once both batches are done, with the rows', async () => {
    const r = run([P, B, server.dataRow('on'), server.complete('SELECT 1'), C, C, server.ready('I'), C, server.ready('I')])
    expect(r.settledAfter).toBe(8)
    expect(await r.outcome).toEqual([[['on']]])
  })

  for (const [where, replies] of [
    ['Execute', [P, B, server.error('57014', 'canceling statement due to user request')]],
    ['Bind', [P, server.error('57014', 'canceling statement due to user request')]],
  ] as const) {
    it(`after an error at ${where}, refuses only once the statement is closed, and the session goes on`, async () => {
      const r = run([...replies, server.ready('I'), C, server.ready('I')])
      expect(r.settledAfter).toBe(replies.length + 2)
      expect(String(await r.outcome)).toMatch(/the server refused the tunnel's own query: canceling statement due to user request/)
    })
  }

  it('ends the connection when the server refuses the cleanup', async () => {
    const r = run([P, B, server.complete('SELECT 0'), C, C, server.ready('I'), server.error('XX000', 'odd'), server.ready('I')])
    expect(await r.outcome).toBeInstanceOf(ProtocolDesync)
  })
})
