/**
 * A statement event's line is made on a fast path: its data encoded by `statementJson` (members
 * written one by one, groups reused from the session's last statement, a text's normalized form
 * reused while the text repeats), the envelope's head written without JSON.stringify, and the line
 * encoded straight into a shared slab of bytes that the spool is handed views of. Every byte of that
 * line is hashed, signed over and read back by `sessions verify`, spool-scan and the shipper, so it
 * must be exactly the line of the generic path (`sealEvent` of the event with `JSON.stringify` of its
 * data). The lines below are pinned byte for byte, and a recorder's whole log is compared with the
 * generic path over texts with unicode and quotes, long texts, bind values and errors, with many
 * lines waiting unwritten while the slab fills and is replaced.
 */
import {createHash, generateKeyPairSync, sign} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {afterAll, describe, expect, it} from 'vitest'
import {ChainState, sealEvent, sha256hex, type Signer} from '../../src/audit/chain.js'
import {statementData, statementJson, StatementJsonMemo, type Normalized, type StatementDetails} from '../../src/audit/events.js'
import {Recorder} from '../../src/audit/recorder.js'
import type {StatementEvent} from '../../src/proxy/seam.js'
import {alice, removeTempDirs, stmt, tempDir} from './helpers.js'

afterAll(removeTempDirs)

const SESSION = 'sess-bytes-1'

/** Stands for the parser: a fixed answer per text, so the pinned lines do not depend on libpg_query. */
const normalize = (sql: string): Normalized => (sql.startsWith('BROKEN') ? {normalized: null, fingerprint: null} : {normalized: sql.replace(/\d+/g, '$1').slice(0, 60), fingerprint: sha256hex(sql).slice(0, 16)})

const LONG = `SELECT ${Array.from({length: 2500}, (_, i) => `c${i}`).join(', ')} FROM wide_table WHERE note = 'ü🙂'`
const LONG_UNICODE = `SELECT '${'é🙂日'.repeat(3000)}'`

/** A statement and what policy and masking said of it, each with members that JSON encodes with care. */
const CASES: {name: string; ev: Partial<StatementEvent>; sql: string; details: StatementDetails}[] = [
  {
    name: 'unicode and quotes in a simple query',
    sql: `SELECT 'héllo wörld', '日本語', '🙂' FROM "Tab""le" WHERE name = 'O''Brien' AND note = '\\n "quoted" \t' -- ,"hash":"x"}`,
    ev: {protocol: 'simple', durationMs: 0.0613, commandTags: ['SELECT 1'], rows: 1},
    details: {class: 'read', decision: 'allow', ruleId: 'default.allow-read', tables: ['public.Tab"le']},
  },
  {
    name: 'bind values of a prepared statement',
    sql: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1 AND note = $2 AND x = $3 AND y = $4',
    ev: {protocol: 'parse', statementName: 'P_0', durationMs: 0.1, commandTags: ['SELECT 1'], rows: 1},
    details: {class: 'read', decision: 'allow', tables: ['pgbench_accounts'], params: ['12345', 'a"b\\c\nd', null, '€ \u0000 \ud800'], maskedColumns: [], maskedValues: 0},
  },
  {
    name: 'the same prepared statement run again with other values',
    sql: 'SELECT abalance FROM pgbench_accounts WHERE aid = $1 AND note = $2 AND x = $3 AND y = $4',
    ev: {protocol: 'parse', statementName: 'P_0', durationMs: 0.2, commandTags: ['SELECT 1'], rows: 1},
    details: {class: 'read', decision: 'allow', tables: ['pgbench_accounts'], params: ['7', '', null, '🙂'], maskedColumns: [], maskedValues: 0},
  },
  {
    name: 'an error from the server',
    sql: 'UPDATE accounts SET balance = balance / 0 WHERE id = 1',
    ev: {protocol: 'simple', durationMs: 1.5, commandTags: [], rows: 0, outcome: 'error', error: {code: '22012', message: 'division by zero near "balance" ü'}},
    details: {class: 'write', decision: 'allow', tables: ['accounts'], error: {code: '22012', message: 'division by zero near "balance" ü'}},
  },
  {
    name: 'a denied statement',
    sql: 'DELETE FROM accounts',
    ev: {protocol: 'simple', durationMs: 0, commandTags: [], rows: 0, outcome: 'rejected', verdict: {action: 'reject', error: {code: '42501', message: 'dbgate: "DELETE" without WHERE'}} as StatementEvent['verdict']},
    details: {class: 'write', decision: 'deny', ruleId: 'no-unfiltered-delete', tables: ['accounts']},
  },
  {
    name: 'a masked result with a preview',
    sql: 'SELECT email, ssn FROM people LIMIT 3',
    ev: {protocol: 'simple', durationMs: 2.25, commandTags: ['SELECT 3'], rows: 3},
    details: {class: 'read', decision: 'allow', tables: ['people'], maskedColumns: ['people.email (email)', 'people.ssn (national_id)'], maskedValues: 6, preview: {columns: ['email', 'ssn'], rows: [['a***@example.com', '***-**-1234'], [null, '日本'], ['"q"', '\\']], truncated: true}},
  },
  {
    name: 'a text that does not parse',
    sql: 'BROKEN SELEC 1 \ud83d',
    ev: {protocol: 'simple', durationMs: 0.01, commandTags: [], rows: 0, outcome: 'error', error: {code: '42601', message: 'syntax error at or near "SELEC"'}},
    details: {decision: 'syntax_error', tables: [], error: {code: '42601', message: 'syntax error at or near "SELEC"'}},
  },
]

const eventOf = (c: (typeof CASES)[number], i: number): StatementEvent =>
  stmt(SESSION, c.sql, {connectionId: 7, startedAt: new Date(Date.UTC(2026, 11, 5, 12, 0, 0, 3 * i)), ...c.ev})

/**
 * The lines of the generic path for CASES in order, after a first line whose hash is `a…a`:
 * `sealEvent` with JSON.stringify of `statementData`'s data, timestamps 1 ms after each start.
 */
const PINNED: string[] = [
  "{\"v\":1,\"type\":\"statement\",\"session\":\"sess-bytes-1\",\"seq\":42,\"ts\":\"2026-12-05T12:00:00.001Z\",\"prev\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"data\":{\"connectionId\":7,\"protocol\":\"simple\",\"sql\":\"SELECT 'héllo wörld', '日本語', '🙂' FROM \\\"Tab\\\"\\\"le\\\" WHERE name = 'O''Brien' AND note = '\\\\n \\\"quoted\\\" \\t' -- ,\\\"hash\\\":\\\"x\\\"}\",\"normalized\":\"SELECT 'héllo wörld', '日本語', '🙂' FROM \\\"Tab\\\"\\\"le\\\" WHERE name \",\"fingerprint\":\"4d04a4a94c6848ee\",\"class\":\"read\",\"decision\":\"allow\",\"ruleId\":\"default.allow-read\",\"startedAt\":\"2026-12-05T12:00:00.000Z\",\"durationMs\":0.061,\"rows\":1,\"commandTags\":[\"SELECT 1\"],\"outcome\":\"ok\",\"tables\":[\"public.Tab\\\"le\"],\"maskedColumns\":[]},\"hash\":\"0dafde19cbedb6a9a2b3d544f049990659dc9dc00dc97a49b41a4061e1e6bdbd\"}",
  "{\"v\":1,\"type\":\"statement\",\"session\":\"sess-bytes-1\",\"seq\":43,\"ts\":\"2026-12-05T12:00:00.004Z\",\"prev\":\"1fcb41d3532b69b33319d8f2aa2548b73e7635a9f95bdfa0f6b31dd9138113b7\",\"data\":{\"connectionId\":7,\"protocol\":\"parse\",\"statementName\":\"P_0\",\"sql\":\"SELECT abalance FROM pgbench_accounts WHERE aid = $1 AND note = $2 AND x = $3 AND y = $4\",\"normalized\":\"SELECT abalance FROM pgbench_accounts WHERE aid = $$1 AND no\",\"fingerprint\":\"450a7ebec37ca71e\",\"params\":[\"12345\",\"a\\\"b\\\\c\\nd\",null,\"€ \\u0000 \\ud800\"],\"class\":\"read\",\"decision\":\"allow\",\"startedAt\":\"2026-12-05T12:00:00.003Z\",\"durationMs\":0.1,\"rows\":1,\"commandTags\":[\"SELECT 1\"],\"outcome\":\"ok\",\"tables\":[\"pgbench_accounts\"],\"maskedColumns\":[],\"maskedValues\":0},\"hash\":\"14623098bedaad03951d26f578070bac806164e2c4b3974f6d71b1c7a3deac40\"}",
  "{\"v\":1,\"type\":\"statement\",\"session\":\"sess-bytes-1\",\"seq\":44,\"ts\":\"2026-12-05T12:00:00.007Z\",\"prev\":\"c8073f5b98216d144a50cd93a74c9ea55d86de7dbbf6215ba79a5fffc7c27a70\",\"data\":{\"connectionId\":7,\"protocol\":\"parse\",\"statementName\":\"P_0\",\"sql\":\"SELECT abalance FROM pgbench_accounts WHERE aid = $1 AND note = $2 AND x = $3 AND y = $4\",\"normalized\":\"SELECT abalance FROM pgbench_accounts WHERE aid = $$1 AND no\",\"fingerprint\":\"450a7ebec37ca71e\",\"params\":[\"7\",\"\",null,\"🙂\"],\"class\":\"read\",\"decision\":\"allow\",\"startedAt\":\"2026-12-05T12:00:00.006Z\",\"durationMs\":0.2,\"rows\":1,\"commandTags\":[\"SELECT 1\"],\"outcome\":\"ok\",\"tables\":[\"pgbench_accounts\"],\"maskedColumns\":[],\"maskedValues\":0},\"hash\":\"8e92e55ac7ed90731d80aa2d367cfdc8ca594b83a8eb3029bbb0fb103df930d8\"}",
  "{\"v\":1,\"type\":\"statement\",\"session\":\"sess-bytes-1\",\"seq\":45,\"ts\":\"2026-12-05T12:00:00.010Z\",\"prev\":\"6dc9b317a11cbd2f9c1b565e81ea6dc28400bd7124efe249392ffac0cd49a90e\",\"data\":{\"connectionId\":7,\"protocol\":\"simple\",\"sql\":\"UPDATE accounts SET balance = balance / 0 WHERE id = 1\",\"normalized\":\"UPDATE accounts SET balance = balance / $1 WHERE id = $1\",\"fingerprint\":\"3b8ebf2c277c4d33\",\"class\":\"write\",\"decision\":\"allow\",\"startedAt\":\"2026-12-05T12:00:00.009Z\",\"durationMs\":1.5,\"rows\":0,\"commandTags\":[],\"outcome\":\"error\",\"tables\":[\"accounts\"],\"maskedColumns\":[],\"error\":{\"sqlstate\":\"22012\",\"message\":\"division by zero near \\\"balance\\\" ü\"}},\"hash\":\"69621826289e402293a6dd0c5665ffd62c353cf0ee95e05d774c52e4b3c8a8f6\"}",
  "{\"v\":1,\"type\":\"statement\",\"session\":\"sess-bytes-1\",\"seq\":46,\"ts\":\"2026-12-05T12:00:00.013Z\",\"prev\":\"5e2a9a7688f661062b64601a0e6cc061c8960d74bd6ef6202731922969ab91a2\",\"data\":{\"connectionId\":7,\"protocol\":\"simple\",\"sql\":\"DELETE FROM accounts\",\"normalized\":\"DELETE FROM accounts\",\"fingerprint\":\"f0a1135c7e2faa21\",\"class\":\"write\",\"decision\":\"deny\",\"ruleId\":\"no-unfiltered-delete\",\"startedAt\":\"2026-12-05T12:00:00.012Z\",\"durationMs\":0,\"rows\":0,\"commandTags\":[],\"outcome\":\"rejected\",\"tables\":[\"accounts\"],\"maskedColumns\":[],\"error\":{\"sqlstate\":\"42501\",\"message\":\"dbgate: \\\"DELETE\\\" without WHERE\"}},\"hash\":\"083bbdd21621e48b6c5bd88b2ad135718c51ea6362776288962e183a75c3a6ba\"}",
  "{\"v\":1,\"type\":\"statement\",\"session\":\"sess-bytes-1\",\"seq\":47,\"ts\":\"2026-12-05T12:00:00.016Z\",\"prev\":\"ac15d2158ccaa8447342cd2634e57c6e55de470dfeaec36ea54d8042fb4b953a\",\"data\":{\"connectionId\":7,\"protocol\":\"simple\",\"sql\":\"SELECT email, ssn FROM people LIMIT 3\",\"normalized\":\"SELECT email, ssn FROM people LIMIT $1\",\"fingerprint\":\"f39316974f76292f\",\"class\":\"read\",\"decision\":\"allow\",\"startedAt\":\"2026-12-05T12:00:00.015Z\",\"durationMs\":2.25,\"rows\":3,\"commandTags\":[\"SELECT 3\"],\"outcome\":\"ok\",\"tables\":[\"people\"],\"maskedColumns\":[\"people.email (email)\",\"people.ssn (national_id)\"],\"maskedValues\":6,\"preview\":{\"columns\":[\"email\",\"ssn\"],\"rows\":[[\"a***@example.com\",\"***-**-1234\"],[null,\"日本\"],[\"\\\"q\\\"\",\"\\\\\"]],\"truncated\":true}},\"hash\":\"d46f0ffa83b86fc0a59751fac885d9950f6f4c282aead09186d3a4c24ac9dcfe\"}",
  "{\"v\":1,\"type\":\"statement\",\"session\":\"sess-bytes-1\",\"seq\":48,\"ts\":\"2026-12-05T12:00:00.019Z\",\"prev\":\"d4bfb2ec549723d5c6ac33b422b3a6818f919e4e85652649468b136e0e5eacdf\",\"data\":{\"connectionId\":7,\"protocol\":\"simple\",\"sql\":\"BROKEN SELEC 1 \\ud83d\",\"normalized\":null,\"fingerprint\":null,\"decision\":\"syntax_error\",\"startedAt\":\"2026-12-05T12:00:00.018Z\",\"durationMs\":0.01,\"rows\":0,\"commandTags\":[],\"outcome\":\"error\",\"tables\":[],\"maskedColumns\":[],\"error\":{\"sqlstate\":\"42601\",\"message\":\"syntax error at or near \\\"SELEC\\\"\"}},\"hash\":\"9fea124936a13982a44600535f540c5bbdee5b0a24bec3a3ab4d3b7467c496ec\"}",
]

/** Length and sha256 of the lines of `LONG`, `LONG_UNICODE` and `LONG` again (each several times the slab's line limit), after a first line whose hash is `c…c`. */
const PINNED_LONG: string[] = [
  "17019 f3ee286bbafeabd7ba4f33b6313cb7415fd7067931a73af9cf36f622de514bd7",
  "27660 c1d658424fa0992a1329e6a7e4ec3f63964ac12f4f881834308a62996c9794dd",
  "17019 417b4933b3be4d6ddc7bd533f744b782031d376e9a57ff252bfd0c7612db9f64",
]

/** The generic path: each line `sealEvent` of the event, its data `JSON.stringify`'d, chained by `sha256hex` of the line. */
function genericLines(): string[] {
  let prev = 'a'.repeat(64)
  return CASES.map((c, i) => {
    const ev = eventOf(c, i)
    const line = sealEvent({type: 'statement', session: SESSION, seq: 42 + i, ts: new Date(ev.startedAt.getTime() + 1).toISOString(), prev, data: statementData(ev, c.details, 20, normalize)})
    prev = sha256hex(line)
    return line
  })
}

describe('statement lines: the fast path writes the generic path\'s bytes', () => {
  it('pinned lines: texts with unicode and quotes, bind values, errors, previews', () => {
    const chain = new ChainState(SESSION, {seq: 41, prev: 'a'.repeat(64)})
    const memo = new StatementJsonMemo()
    const lines = CASES.map((c, i) => {
      const ev = eventOf(c, i)
      const data = statementData(ev, c.details, 20, normalize, memo)
      return chain.appendBytes('statement', data, new Date(ev.startedAt.getTime() + 1), undefined, statementJson(data, memo))
    })
    expect(lines.map((b) => b.toString('utf8'))).toEqual(PINNED.map((l) => `${l}\n`))
    lines.forEach((b, i) => expect(b.equals(Buffer.from(`${PINNED[i]}\n`, 'utf8')), CASES[i]!.name).toBe(true))
    // And the generic path today still writes them.
    expect(genericLines()).toEqual(PINNED)
  })

  it('long texts (beyond the slab) are pinned by their digest', () => {
    const chain = new ChainState(SESSION, {seq: 1, prev: 'c'.repeat(64)})
    const memo = new StatementJsonMemo()
    const digests = [LONG, LONG_UNICODE, LONG].map((sql, i) => {
      const ev = stmt(SESSION, sql, {connectionId: 7, protocol: 'simple', startedAt: new Date(Date.UTC(2026, 11, 5, 12, 0, 1, i)), durationMs: 3, commandTags: ['SELECT 1'], rows: 1})
      const data = statementData(ev, {class: 'read', decision: 'allow', tables: ['wide_table']}, 20, normalize, memo)
      const bytes = chain.appendBytes('statement', data, ev.startedAt, undefined, statementJson(data, memo))
      return `${bytes.length} ${createHash('sha256').update(bytes).digest('hex')}`
    })
    expect(digests).toEqual(PINNED_LONG)
  })
})

describe('a chain resumed from a log written elsewhere', () => {
  it('writes its head as JSON.stringify would, whatever the resumed prev and seq', () => {
    for (const resume of [{seq: 9, prev: 'not "hex" \\ ü'}, {seq: 9, prev: 'A'.repeat(64)}, {seq: Number.NaN, prev: 'b'.repeat(64)}, {seq: 2 ** 53, prev: 'b'.repeat(64)}, {seq: 1.5, prev: 'b'.repeat(64)}]) {
      const fast = new ChainState(SESSION, resume)
      const generic = new ChainState(SESSION, resume)
      for (let i = 0; i < 3; i++) {
        const data = {sql: `select ${i}`}
        const ts = new Date(Date.UTC(2026, 11, 5, 14, 0, 0, i))
        expect(fast.appendBytes('statement', data, ts, undefined, JSON.stringify(data)).toString('utf8'), JSON.stringify(resume)).toBe(`${generic.append('statement', data, ts)}\n`)
      }
    }
  })
})

const {privateKey} = generateKeyPairSync('ed25519')
const signer: Signer = {keyId: 'd'.repeat(32), sign: (message) => sign(null, message, privateKey).toString('base64')}

/** Texts whose line is just within the slab's limit, in characters of every UTF-8 length (3 bytes each at the very bound). */
const NEAR_LIMIT = [`SELECT '${'日'.repeat(5000)}'`, `SELECT '${'🙂'.repeat(2600)}'`, `SELECT '${'é'.repeat(5100)}'`, `SELECT '${'x'.repeat(5200)}'`]

describe('a recorder\'s log, with many lines waiting unwritten', () => {
  it('is, line for line, the generic path\'s log, across slabs, long texts and signed checkpoints', async () => {
    const T0 = Date.UTC(2026, 11, 5, 13, 0, 0)
    let ticks = 0
    const rec = await Recorder.open({signer, dbgateVersion: '1.2.3', spoolDir: await tempDir('dbgate-bytes-'), checkpointEvery: 25, normalize, flushIntervalMs: 3_600_000, now: () => new Date(T0 + ticks++)})
    const s = rec.startSession({sessionId: SESSION, identity: alice, target: 't', database: 'db', dbUser: 'u', client: {address: '127.0.0.1'}})
    const recorded: {ev: StatementEvent; details: StatementDetails}[] = []
    const texts = [...CASES.map((c) => c.sql), LONG, LONG_UNICODE, ...NEAR_LIMIT]
    for (let i = 0; i < 600; i++) {
      // Mostly the cases in turn (each repeated now and then, as a prepared statement is), a long or near-limit text at times.
      const c = CASES[Math.floor(i / 2) % CASES.length]!
      const sql = i % 41 === 40 ? texts[CASES.length + ((i / 41) | 0) % (texts.length - CASES.length)]! : i % 3 === 2 ? `${c.sql} /* ${i} */` : c.sql
      const ev = stmt(SESSION, sql, {connectionId: 7, startedAt: new Date(T0 + i), ...c.ev, durationMs: i / 7})
      const details = {...c.details, ...(c.details.params ? {params: [String(i), ...c.details.params.slice(1)]} : {})}
      s.statement(ev, details)
      recorded.push({ev, details})
      // Written only now and then: the lines in between wait in the spool, views of slabs filled since.
      if (i % 97 === 96) rec.release()
    }
    // Lines of 3-byte characters of every size, unwritten: each slab ends with less room than some
    // line would take were its characters counted as one byte each.
    for (let k = 0; k < 80; k++) {
      const ev = stmt(SESSION, `SELECT '${'日'.repeat(100 + 61 * k)}'`, {connectionId: 7, startedAt: new Date(T0 + k), durationMs: 1})
      const details: StatementDetails = {class: 'read', decision: 'allow', tables: []}
      s.statement(ev, details)
      recorded.push({ev, details})
    }
    await rec.close('test')
    const bytes = await readFile(s.spoolPath)
    const lines = bytes.toString('utf8').split('\n')
    expect(lines.pop()).toBe('')
    let prev = sha256hex(SESSION)
    let n = 0
    lines.forEach((line, i) => {
      const parsed = JSON.parse(line) as {type: string; seq: number; ts: string; data: unknown; sig?: unknown}
      expect(parsed.seq).toBe(i + 1)
      expect(parsed.ts).toBe(new Date(T0 + i).toISOString())
      const data = parsed.type === 'statement' ? statementData(recorded[n]!.ev, recorded[n++]!.details, 20, normalize) : parsed.data
      const expected = sealEvent({type: parsed.type, session: SESSION, seq: i + 1, ts: new Date(T0 + i).toISOString(), prev, data}, parsed.sig ? signer : undefined)
      expect(line, `line ${i + 1} (${parsed.type})`).toBe(expected)
      prev = sha256hex(expected)
    })
    expect(n).toBe(680)
    expect(bytes.equals(Buffer.from(`${lines.join('\n')}\n`, 'utf8'))).toBe(true)
    // Signed: session.start, a checkpoint after every 25 events, session.end.
    expect(lines.filter((l) => l.includes('"type":"checkpoint"')).length).toBe(27)
  })
})
