/**
 * The protocol state machine, byte by byte: a real ClientConnection between two in-memory sockets,
 * where the test plays the client and the server. Each scenario is run with every message stream
 * cut at every byte boundary (in two at each position, and byte by byte), and must give the same
 * forwarded messages and the same acknowledged state every time.
 */
import {serialize} from 'pg-protocol'
import {beforeAll, describe, expect, it} from 'vitest'
import {loadParser} from '../../src/sql/parser.js'
import {decodeNotice} from '../../src/wire/backend.js'
import {Framer} from '../../src/wire/framer.js'
import {codesOf, everySplit, memoryConnection, type MemoryConnection} from '../helpers/memory-connection.js'
import {server} from '../helpers/wire-encode.js'

interface Observed {
  toServer: string
  toClient: string
  statements: string[]
  portals: string[]
  pending: number
  closed: boolean
}

type Check = Partial<Observed> & {clientError?: RegExp}
type Step = {client: Buffer[]} | {server: Buffer[]} | {check: Check}

const c = (...m: Buffer[]): Step => ({client: m})
const s = (...m: Buffer[]): Step => ({server: m})
const check = (o: Check): Step => ({check: o})

function observe(m: MemoryConnection): Observed & {clientBytes: Buffer} {
  const acked = m.conn.state.acknowledged()
  const clientBytes = m.client.take()
  return {
    toServer: codesOf(m.upstream.take()),
    toClient: codesOf(clientBytes),
    clientBytes,
    statements: [...acked.statements.keys()].sort(),
    portals: [...acked.portals.keys()].sort(),
    pending: m.conn.state.pendingCount,
    closed: m.conn.closed,
  }
}

function errorsIn(bytes: Buffer): string[] {
  const out: string[] = []
  new Framer({maxMessageSize: 1 << 20}).push(bytes, (f) => {
    if (f.code === 0x45) out.push(`${decodeNotice(f.body).severity} ${decodeNotice(f.body).code} ${decodeNotice(f.body).message}`)
  })
  return out
}

/** Runs the scenario once per way of cutting each step's bytes, and checks every observation. */
function play(steps: Step[]): void {
  const feeds = steps.flatMap((st, i) => ('client' in st || 'server' in st ? [i] : []))
  const variants: {step: number; chunks: Buffer[]}[] = [{step: -1, chunks: []}]
  for (const i of feeds) {
    const st = steps[i] as {client?: Buffer[]; server?: Buffer[]}
    for (const chunks of everySplit(Buffer.concat(st.client ?? st.server!)).slice(1)) variants.push({step: i, chunks})
  }
  for (const v of variants) {
    const m = memoryConnection()
    steps.forEach((st, i) => {
      if ('check' in st) {
        const {clientError, ...expected} = st.check
        const seen = observe(m)
        const where = `step ${i}${v.step >= 0 ? ` (step ${v.step} cut into ${v.chunks.length} chunks)` : ''}`
        expect({...seen, clientBytes: undefined}, where).toMatchObject(expected)
        if (clientError) expect(errorsIn(seen.clientBytes).join('\n'), where).toMatch(clientError)
        return
      }
      const bytes = Buffer.concat('client' in st ? st.client : st.server)
      const chunks = v.step === i ? v.chunks : [bytes]
      if ('client' in st) m.fromClient(chunks)
      else m.fromServer(chunks)
    })
  }
}

// The tunnel loads the parser before it listens; so does this test before its first message.
beforeAll(() => loadParser())

const q = (text: string) => serialize.query(text)
const parse = (name: string, text: string) => serialize.parse({name, text})
const bind = (portal: string, statement: string) => serialize.bind({portal, statement})
const exec = (portal = '', rows = 0) => serialize.execute({portal, rows})
const sync = () => serialize.sync()

describe('the protocol state follows the server', () => {
  it('acknowledges Parse and Bind by their replies; the portal ends with the implicit transaction', () => {
    play([
      c(parse('s', 'select 1'), bind('', 's'), serialize.describe({type: 'P', name: ''}), exec(), sync()),
      check({toServer: 'PBDES', toClient: '', statements: [], portals: [], pending: 5}),
      s(server.parseComplete(), server.bindComplete(), server.rowDescription(), server.dataRow('1'), server.complete('SELECT 1'), server.ready('I')),
      check({toServer: '', toClient: '12TDCZ', statements: ['s'], portals: [], pending: 0}),
    ])
  })

  it('drops exactly the replies the server skips after an error, a simple Query among them', () => {
    play([
      c(parse('', 'select 1'), sync()),
      s(server.parseComplete(), server.ready()),
      check({statements: ['']}),
      c(parse('bad', 'select x'), bind('', ''), exec(), q('select 2'), sync()),
      check({toServer: 'PBEQS', pending: 5}),
      s(server.error('42703'), server.ready()),
      check({toClient: 'EZ', pending: 0, statements: ['']}),
      c(q('select 3')),
      s(server.rowDescription(), server.dataRow('3'), server.complete('SELECT 1'), server.ready()),
      check({toClient: 'TDCZ', pending: 0}),
    ])
  })

  it('skips, with no reply owed, what the client sends after the error has arrived', () => {
    play([
      c(parse('bad', 'select x'), serialize.flush()),
      s(server.error('42703')),
      check({toClient: 'E', pending: 0}),
      c(q('select 1'), parse('', 'select 2'), sync()),
      check({toServer: 'QPS', pending: 1}),
      s(server.ready()),
      check({toClient: 'Z', pending: 0, statements: []}),
    ])
  })

  it('keeps the old statement when a named Parse fails, and drops the unnamed one when an unnamed Parse fails', () => {
    play([
      c(parse('s', 'select 1'), parse('', 'select 1'), sync()),
      s(server.parseComplete(), server.parseComplete(), server.ready()),
      check({statements: ['', 's']}),
      c(parse('s', 'select 2'), sync()),
      s(server.error('42P05', 'prepared statement "s" already exists'), server.ready()),
      check({statements: ['', 's']}),
      c(parse('', 'select nope'), sync()),
      s(server.error('42703'), server.ready()),
      check({statements: ['s']}),
      // Binding what the tunnel no longer knows is refused: a Bind the server must reject goes in its
      // place, and in place of the Execute of the portal it would have made.
      c(bind('', ''), exec(), sync()),
      check({toServer: 'BBS'}),
      s(server.error('08P01', 'bind message has 2 parameter formats but 0 parameters'), server.ready()),
      check({toClient: 'EZ', clientError: /^ERROR 26000 dbgate: the unnamed prepared statement is not known to the tunnel$/}),
    ])
  })

  it('drops the unnamed statement and portal with a simple Query; named portals live on in a transaction block', () => {
    play([
      c(q('begin')),
      s(server.complete('BEGIN'), server.ready('T')),
      c(parse('', 'select 1'), bind('named', ''), bind('', ''), sync()),
      s(server.parseComplete(), server.bindComplete(), server.bindComplete(), server.ready('T')),
      check({statements: [''], portals: ['', 'named']}),
      c(q('select 1')),
      s(server.rowDescription(), server.dataRow('1'), server.complete('SELECT 1'), server.ready('T')),
      check({statements: [], portals: ['named']}),
    ])
  })

  it('applies SQL definitions per CommandComplete, up to the statement that fails', () => {
    play([
      c(q('prepare a as select 1; prepare b as select 2; select 1/0; prepare c as select 3')),
      s(server.complete('PREPARE'), server.complete('PREPARE'), server.error('22012'), server.ready()),
      check({statements: ['a', 'b'], toClient: 'CCEZ'}),
      c(q('deallocate a')),
      s(server.complete('DEALLOCATE'), server.ready()),
      check({statements: ['b']}),
      c(q('discard all')),
      s(server.complete('DISCARD ALL'), server.ready()),
      check({statements: []}),
    ])
  })

  it('keeps WITH HOLD cursors past COMMIT, drops the others, and drops what a rolled-back transaction declared', () => {
    play([
      c(q('begin')),
      s(server.complete('BEGIN'), server.ready('T')),
      c(q('declare c1 cursor for select 1; declare c2 cursor with hold for select 2')),
      s(server.complete('DECLARE CURSOR'), server.complete('DECLARE CURSOR'), server.ready('T')),
      check({portals: ['c1', 'c2']}),
      c(q('commit')),
      s(server.complete('COMMIT'), server.ready('I')),
      check({portals: ['c2']}),
      c(q('begin; declare c3 cursor with hold for select 3')),
      s(server.complete('BEGIN'), server.complete('DECLARE CURSOR'), server.ready('T')),
      check({portals: ['c2', 'c3']}),
      c(q('rollback')),
      s(server.complete('ROLLBACK'), server.ready('I')),
      check({portals: ['c2']}),
      c(q('close c2')),
      s(server.complete('CLOSE CURSOR'), server.ready()),
      check({portals: []}),
    ])
  })

  it('drops a statement on CloseComplete, not before', () => {
    play([
      c(parse('s', 'select 1'), sync()),
      s(server.parseComplete(), server.ready()),
      c(serialize.close({type: 'S', name: 's'}), sync()),
      check({statements: ['s'], toServer: 'PSCS'}),
      s(server.closeComplete(), server.ready()),
      check({statements: [], toClient: '3Z'}),
    ])
  })

  it('holds a Bind of a statement whose Parse is in flight from an earlier segment until the server answers it', () => {
    play([
      c(parse('s', 'select 1'), sync(), bind('', 's'), exec(), sync()),
      check({toServer: 'PS', pending: 2}),
      s(server.parseComplete(), server.ready()),
      check({toServer: 'BES', toClient: '1Z', statements: ['s']}),
      s(server.bindComplete(), server.dataRow('1'), server.complete('SELECT 1'), server.ready()),
      check({toClient: '2DCZ', pending: 0}),
    ])
  })

  it('owes no reply to a Sync the server reads as COPY data (libpq sends one right after a COPY it runs with PQexecParams)', () => {
    const data = serialize.copyData(Buffer.from('1\n'))
    play([
      c(parse('', 'copy t from stdin'), bind('', ''), exec(), sync()),
      check({toServer: 'PBE', pending: 3}),
      s(server.parseComplete(), server.bindComplete(), server.copyInResponse()),
      check({toServer: '', toClient: '12G', pending: 1}),
      c(data, sync(), data, serialize.copyDone(), sync()),
      check({toServer: 'ddcS', pending: 2}),
      s(server.complete('COPY 2'), server.ready()),
      check({toClient: 'CZ', pending: 0}),
      c(q('select 1')),
      s(server.rowDescription(), server.dataRow('1'), server.complete('SELECT 1'), server.ready()),
      check({toClient: 'TDCZ', pending: 0, closed: false}),
    ])
  })

  it('holds what follows a simple COPY until the server starts it, and passes the COPY data on', () => {
    const data = serialize.copyData(Buffer.from('1\n'))
    play([
      c(q('copy t from stdin'), data, sync(), serialize.copyDone(), q('select 1')),
      check({toServer: 'Qd', pending: 1}),
      s(server.copyInResponse()),
      check({toServer: 'c', toClient: 'G', pending: 1}),
      s(server.complete('COPY 1'), server.ready()),
      check({toServer: 'Q', toClient: 'CZ', pending: 1}),
    ])
  })

  it('holds EXECUTE of a name that a pipelined PREPARE defines until the PREPARE is answered', () => {
    play([
      c(q('prepare p as select 1'), q('execute p')),
      check({toServer: 'Q', pending: 1}),
      s(server.complete('PREPARE'), server.ready()),
      check({toServer: 'Q', statements: ['p']}),
      s(server.rowDescription(), server.dataRow('1'), server.complete('SELECT 1'), server.ready()),
      check({toClient: 'TDCZ', pending: 0}),
    ])
  })
})

describe('a reply that does not fit what the server owes closes the connection', () => {
  const desync: [string, Step[]][] = [
    ['rows with nothing pending', [s(server.dataRow('secret'))]],
    ['an error with nothing pending', [s(server.error('XX000'))]],
    ['ParseComplete in answer to a Bind', [c(parse('s', 'select 1'), sync()), s(server.parseComplete(), server.ready()), c(bind('', 's'), sync()), s(server.parseComplete())]],
    ['a RowDescription in answer to an Execute', [c(parse('', 'select 1'), bind('', ''), exec(), sync()), s(server.parseComplete(), server.bindComplete(), server.rowDescription())]],
    ['rows for a portal the tunnel does not know', [c(exec('ghost'), sync()), s(server.dataRow('secret'))]],
    ['BindComplete for a Bind the tunnel refused', [c(bind('', 'unknown'), sync()), s(server.bindComplete())]],
    ['a PREPARE completed with another command tag', [c(q('prepare p as select 1')), s(server.complete('SELECT 1'))]],
    ['more statements completed than the text holds', [c(q('prepare p as select 1')), s(server.complete('PREPARE'), server.complete('PREPARE'))]],
    ['BackendKeyData in the middle of a session', [s(server.backendKeyData())]],
    ['CopyInResponse for a statement the tunnel did not read as COPY FROM STDIN', [c(q('select 1')), s(server.copyInResponse())]],
    ['ReadyForQuery twice for one query', [c(q('select 1')), s(server.rowDescription(), server.dataRow('1'), server.complete('SELECT 1'), server.ready(), server.ready())]],
  ]
  for (const [what, steps] of desync) {
    it(what, () => {
      play([...steps, check({closed: true, clientError: /FATAL 08P01 dbgate: the server's replies no longer match what the tunnel expects .*so the connection was closed rather than continued on a guess/})])
      const m = memoryConnection()
      for (const st of steps) {
        if ('client' in st) m.fromClient(st.client)
        else if ('server' in st) m.fromServer(st.server)
      }
      expect(m.logs.join('\n')).toMatch(/the server's replies no longer match the session the tunnel tracks/)
      expect(m.client.take().includes(Buffer.from('secret'))).toBe(false)
    })
  }

  it('forwards a FATAL the server sends on its own (e.g. terminated by an administrator)', () => {
    play([s(server.error('57P01', 'terminating connection due to administrator command', 'FATAL')), check({toClient: 'E', closed: false})])
  })
})
