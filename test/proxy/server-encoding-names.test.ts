/**
 * Names in a database whose encoding is not UTF8. The server converts what the client sends into
 * the database's encoding and keys prepared statements, portals and cursors by their first 63 bytes
 * there; the tunnel read names as UTF-8 (its parser cuts identifiers at 63 bytes of UTF-8). In a
 * LATIN1 database `a…aè` and `a…aé` (62 a's) are two names of 63 bytes to the server and one name
 * (the 62 a's) to the tunnel, so a statement prepared under the second took the place of the first
 * in the tunnel's map while the server kept both: `EXECUTE a…aè` ran the first text, judged and
 * masked as the second, and every customer's name reached the client in clear. In EUC_TW, where a
 * character of 3 bytes in UTF-8 may take 4, two protocol names that differ only at the end are one
 * name to the server: a Close and a Parse of the second replaced the statement bound as the first.
 * Through the tunnel as `dbgate connect` builds it, with a real server and a raw wire client.
 */
import {randomBytes} from 'node:crypto'
import {serialize} from 'pg-protocol'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {sampleCustomers, sampleSchemaSql} from '../../src/demo/sample-data.js'
import {decodeDataRow, decodeNotice} from '../../src/wire/backend.js'
import {openPipelineTunnel, type PipelineTunnel} from '../helpers/open.js'
import {adminUrl, upstreamInfo, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {RawClient, type RawMessage} from '../helpers/raw-client.js'

const {query, parse, bind, execute, sync, close, describe: describeMessage} = serialize

const NAMES = sampleCustomers().map((c) => c.fullName)
/** What reads every customer's name through an expression, which only the text's lineage can trace. */
const READS_NAMES = "select full_name || '' as label from customers"
const READS_CLEAN = 'select label from pub'

/** Every value of every DataRow, as text. */
function values(msgs: RawMessage[]): string[] {
  return msgs.filter((m) => m.code === 'D').flatMap((m) => decodeDataRow(m.body).map((v) => v?.toString('utf8') ?? ''))
}

function errors(msgs: RawMessage[]): string[] {
  return msgs.filter((m) => m.code === 'E').map((m) => `${decodeNotice(m.body).code} ${decodeNotice(m.body).message}`)
}

async function database(encoding: string): Promise<UpstreamInfo> {
  const name = `enc_${encoding.toLowerCase()}_${randomBytes(4).toString('hex')}`
  await withClient(adminUrl('postgres'), (c) => c.query(`create database ${name} template template0 encoding '${encoding}' lc_collate 'C' lc_ctype 'C'`))
  const db = upstreamInfo(name)
  await withClient(db.url, async (c) => {
    await c.query(sampleSchemaSql())
    await c.query("create table pub (id int, label text); insert into pub values (1, 'hello')")
  })
  return db
}

describe('names in a database whose encoding is not UTF8', () => {
  const tunnels: Record<string, PipelineTunnel> = {}
  beforeAll(async () => {
    for (const encoding of ['LATIN1', 'EUC_TW', 'UTF8']) tunnels[encoding] = await openPipelineTunnel(await database(encoding))
  }, 180_000)
  afterAll(async () => {
    for (const t of Object.values(tunnels)) await t.close()
  })

  // Drivers send client_encoding=UTF8 (the tunnel refuses any other); the database's own is LATIN1 or EUC_TW.
  const connect = (encoding: string) => {
    const t = tunnels[encoding]!
    return RawClient.connect(t.info.port, {password: t.info.password, database: t.info.database, params: {client_encoding: 'UTF8'}})
  }

  async function run(r: RawClient, ...msgs: Buffer[]): Promise<RawMessage[]> {
    r.send(...msgs)
    return r.untilReady()
  }

  /** 62 bytes of ASCII, then one letter outside it: 64 bytes in UTF-8, which the parser cuts to the 62; 63 bytes in LATIN1. */
  const A = `${'a'.repeat(62)}é`
  const B = `${'a'.repeat(62)}è`

  const SQL_CASES: [string, string[]][] = [
    ['PREPARE twice, then EXECUTE', [`prepare ${B} as ${READS_NAMES}`, `prepare ${A} as ${READS_CLEAN}`, `execute ${B}`]],
    ['in one text', [`prepare ${B} as ${READS_NAMES}; prepare ${A} as ${READS_CLEAN}; execute ${B}`]],
    ['quoted names', [`prepare "${B}" as ${READS_NAMES}`, `prepare "${A}" as ${READS_CLEAN}`, `execute "${B}"`]],
    ['cursors', ['begin', `declare ${B} cursor for ${READS_NAMES}`, `declare ${A} cursor for ${READS_CLEAN}`, `fetch all from ${B}`, 'rollback']],
    ['cursors WITH HOLD', [`begin; declare ${B} cursor with hold for ${READS_NAMES}; commit`, `begin; declare ${A} cursor with hold for ${READS_CLEAN}; commit`, `fetch all from ${B}`, `close all`]],
  ]
  for (const [what, texts] of SQL_CASES) {
    it(`LATIN1, SQL names cut differently: ${what}: refused, and no name reaches the client`, async () => {
      const r = await connect('LATIN1')
      const got: RawMessage[] = []
      for (const sql of texts) got.push(...(await run(r, query(sql))))
      r.end()
      expect(NAMES.filter((n) => values(got).some((v) => v.includes(n)))).toEqual([])
      const refused = errors(got).filter((e) => /outside ASCII/.test(e))
      expect(refused.length).toBeGreaterThan(0)
      expect(refused[0]).toMatch(/^0A000 dbgate: the name "a{62}" may hold characters outside ASCII, which the tunnel cannot follow in this database: its encoding is LATIN1/)
    })
  }

  it('LATIN1, a protocol Parse whose text executes such a name: refused at its Parse', async () => {
    const r = await connect('LATIN1')
    const got = await run(r, parse({name: 'px', text: `execute ${B}`}), bind({statement: 'px'}), execute({}), sync())
    r.end()
    expect(errors(got)).toEqual([expect.stringMatching(/^0A000 dbgate: the name "a{62}" may hold characters outside ASCII/)])
    expect(values(got)).toEqual([])
  })

  it('EUC_TW, protocol names one to the server and two to the tunnel: the connection is closed before anything runs', async () => {
    // 丄 is 3 bytes in UTF-8 and 4 in EUC_TW: 16 of them and a letter are 49 bytes to the tunnel, 65 to the server, which keys the first 63.
    const stem = '丄'.repeat(16)
    const X = `${stem}x`
    const Y = `${stem}y`
    const r = await connect('EUC_TW')
    r.send(parse({name: X, text: READS_CLEAN}), sync(), close({type: 'S', name: Y}), parse({name: Y, text: READS_NAMES}), sync())
    r.send(bind({statement: X}), describeMessage({type: 'P'}), execute({}), sync())
    // Directly, the server answers all three segments, the last with every customer's name.
    for (let i = 0; i < 3 && !r.closed; i++) await r.untilReady().catch(() => undefined)
    const got = r.messages
    expect(NAMES.filter((n) => values(got).some((v) => v.includes(n)))).toEqual([])
    const fatal = got.filter((m) => m.code === 'E').map((m) => decodeNotice(m.body))
    expect(fatal.map((f) => `${f.severity} ${f.code}`)).toEqual(['FATAL 08P01'])
    expect(fatal[0]!.message).toMatch(/a prepared statement name with characters outside ASCII .* this database's encoding is EUC_TW/)
    // The tunnel goes on serving the database's other sessions.
    const s = await connect('EUC_TW')
    expect(values(await run(s, query(READS_CLEAN)))).toEqual(['hello'])
    s.end()
  })

  it('ASCII names work as ever in such a database, and names outside ASCII in a UTF8 one', async () => {
    for (const [encoding, name] of [['LATIN1', 'stmt_1'], ['EUC_TW', 'stmt_1'], ['UTF8', A]] as const) {
      const r = await connect(encoding)
      const got = [
        ...(await run(r, query(`prepare ${name} as ${READS_NAMES}`))),
        ...(await run(r, query(`execute ${name}`))),
        ...(await run(r, query(`begin; declare ${name} cursor for ${READS_NAMES}`))),
        ...(await run(r, query(`fetch 3 from ${name}`))),
        ...(await run(r, query('commit'))),
        ...(await run(r, parse({name: 'p_1', text: READS_CLEAN}), bind({statement: 'p_1', portal: 'q_1'}), execute({portal: 'q_1'}), sync())),
      ]
      r.end()
      expect(errors(got), encoding).toEqual([])
      expect(values(got)).toContain('hello')
      // Masked, as through any tunnel: the names' lineage is followed.
      expect(values(got).length).toBeGreaterThan(NAMES.length)
      expect(NAMES.filter((n) => values(got).some((v) => v.includes(n)))).toEqual([])
    }
  })
})
