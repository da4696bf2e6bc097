import {mkdtemp, readdir, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseEventLine, type SessionEndData} from '../../src/audit/events.js'
import {Recorder} from '../../src/audit/recorder.js'
import {loadOrCreateInstallationKey} from '../../src/audit/signing.js'
import {SessionReader} from '../../src/audit/read.js'
import {shipPending} from '../../src/audit/shipper.js'
import {openBucket} from '../../src/bucket/index.js'
import {RefusedSignIns, type RefusedSignIn} from '../../src/gateway/refused-sign-ins.js'
import type {Identity} from '../../src/identity/types.js'

/**
 * A person whose token verifies but who keeps being refused (a script in a loop) must not turn
 * each refusal into a session log in the spool and the bucket, and must not make any refusal
 * vanish either: past the rate, they are counted into the next one recorded.
 */
describe('refused sign-ins recorded at a bounded rate, none lost', () => {
  let dir: string
  let recorder: Recorder
  let signer: Awaited<ReturnType<typeof loadOrCreateInstallationKey>>
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-refused-'))
    signer = await loadOrCreateInstallationKey(path.join(dir, 'keys'))
    recorder = await Recorder.open({signer, dbgateVersion: 'test', spoolDir: path.join(dir, 'spool'), previewRows: 0})
  })
  afterAll(() => rm(dir, {recursive: true, force: true}))

  const person = (subject: string): Identity => ({subject, issuer: 'https://idp.test', email: `${subject}@example.com`, groups: [], kind: 'human', tokenHash: 'x', expiresAt: new Date(Date.now() + 3600_000)})
  const refusal = (who: Identity, n: number): RefusedSignIn => ({identity: who, target: 'prod', database: 'prod', client: {address: `127.0.0.1:${1000 + n}`}, reason: 'not-allowed', message: `refused ${n}`})
  const ends = async () => {
    const out: (SessionEndData['refused'] & {email?: string})[] = []
    for (const f of await readdir(path.join(dir, 'spool'), {recursive: true})) {
      if (!String(f).endsWith('.jsonl')) continue
      const events = (await readFile(path.join(dir, 'spool', String(f)), 'utf8')).split('\n').filter(Boolean).map(parseEventLine)
      const email = (events[0]!.data as {identity: {email: string}}).identity.email
      const end = events.find((e) => e.type === 'session.end')!.data as SessionEndData
      out.push({...end.refused!, email})
    }
    return out
  }

  it('records the first ones one by one, counts the rest into the next record, and writes what is held when it stops', async () => {
    let now = Date.parse('2026-12-07T10:00:00Z')
    const records = new RefusedSignIns(recorder, (e) => {
      throw e
    }, {perMinute: 3, now: () => now})
    const [mallory, trent] = [person('mallory'), person('trent')]
    for (let i = 1; i <= 10; i++) records.record(refusal(mallory, i))
    // Another person is not held back by the first one's loop.
    records.record(refusal(trent, 1))
    await records.settled()
    let all = await ends()
    expect(all.filter((r) => r.email === 'trent@example.com')).toHaveLength(1)
    const mine = all.filter((r) => r.email === 'mallory@example.com')
    // Three recorded one by one; the seven past the rate as one record of the last, counting six more.
    expect(mine.map((r) => r.message).sort()).toEqual(['refused 1', 'refused 10', 'refused 2', 'refused 3'])
    expect(mine.find((r) => r.message === 'refused 10')).toMatchObject({alsoRefused: 6, alsoRefusedSince: '2026-12-07T10:00:00.000Z'})
    expect(mine.reduce((n, r) => n + 1 + (r.alsoRefused ?? 0), 0)).toBe(10)

    // A minute on, the held count rides on the next refusal.
    const again = new RefusedSignIns(recorder, (e) => {
      throw e
    }, {perMinute: 1, now: () => now})
    again.record(refusal(trent, 2))
    again.record(refusal(trent, 3))
    again.record(refusal(trent, 4))
    now += 61_000
    again.record(refusal(trent, 5))
    await again.settled()
    all = await ends()
    const trents = all.filter((r) => r.email === 'trent@example.com' && r.message !== 'refused 1')
    expect(trents.map((r) => [r.message, r.alsoRefused ?? 0]).sort()).toEqual([
      ['refused 2', 0],
      ['refused 5', 2],
    ])
  })

  it("holds one person to one rate under all their subjects (Entra's pairwise sub per client), by the mailbox their tokens verified", async () => {
    const now = Date.parse('2026-12-07T12:00:00Z')
    const records = new RefusedSignIns(recorder, (e) => {
      throw e
    }, {perMinute: 3, now: () => now})
    const subjects = ['oscar-cli', 'oscar-ci', 'oscar-agents', 'oscar-linked']
    const emails = ['oscar@example.com', 'Oscar@Example.com', 'oscar+ci@example.com', 'oscar@example.com.']
    const oscar = subjects.map((subject, i): Identity => ({...person(subject), email: emails[i]}))
    let n = 0
    for (let round = 0; round < 3; round++) for (const who of oscar) records.record(refusal(who, 100 + ++n))
    // Someone else, and a subject of no verified mailbox, keep rates of their own.
    for (let i = 0; i < 3; i++) records.record(refusal(person('peggy'), 200 + i))
    const noMail: Identity = {...person('oscar-nomail'), email: undefined}
    for (let i = 0; i < 2; i++) records.record(refusal(noMail, 300 + i))
    await records.settled()
    const all = await ends()
    const oscars = all.filter((r) => /^oscar/i.test(r.email ?? '') && /^refused 1\d\d$/.test(r.message))
    // Three recorded one by one for the person, not three per subject; none lost.
    expect(oscars).toHaveLength(4)
    expect(oscars.reduce((k, r) => k + 1 + (r.alsoRefused ?? 0), 0)).toBe(n)
    expect(all.filter((r) => r.email === 'peggy@example.com' && /^refused 2/.test(r.message))).toHaveLength(3)
    expect(all.filter((r) => /^refused 30\d$/.test(r.message))).toHaveLength(2)
  })

  it('counts a refusal only into a record of the same target and reason, so a last refusal elsewhere cannot stand for the attempts before it', async () => {
    let now = Date.parse('2026-12-07T11:00:00Z')
    const records = new RefusedSignIns(recorder, (e) => {
      throw e
    }, {perMinute: 3, now: () => now})
    const eve = person('eve')
    const at = (target: string | undefined, database: string, reason: string, n: number): RefusedSignIn => ({identity: eve, ...(target ? {target} : {}), database, client: {address: `127.0.0.1:${2000 + n}`}, reason, message: `${database} ${n}`})
    let n = 0
    // Three harmless ones use up the rate; then the attempts that matter, each way they can be
    // followed: a last refusal of another kind in the same minute, and one a minute on.
    for (let i = 0; i < 3; i++) records.record(at('app', 'app', 'not-allowed', ++n))
    for (let i = 0; i < 5; i++) records.record(at('prod_secret', 'prod_secret', 'not-allowed', ++n))
    for (let i = 0; i < 2; i++) records.record(at('app', 'app', 'too-many-sessions', ++n))
    records.record(at(undefined, 'billing', 'unknown-target', ++n))
    now += 61_000
    records.record(at(undefined, 'billing2', 'unknown-target', ++n))
    await records.settled()
    const mine = (await ends()).filter((r) => r.email === 'eve@example.com')
    const total = (prefix: string, reason: string) => mine.filter((r) => r.message.startsWith(prefix) && r.reason === reason).reduce((k, r) => k + 1 + (r.alsoRefused ?? 0), 0)
    expect(total('app ', 'not-allowed')).toBe(3)
    expect(total('prod_secret ', 'not-allowed')).toBe(5)
    expect(total('app ', 'too-many-sessions')).toBe(2)
    expect(total('billing', 'unknown-target')).toBe(2)
    expect(mine.reduce((k, r) => k + 1 + (r.alsoRefused ?? 0), 0)).toBe(n)

    // The listing an auditor reads (`sessions list`, its --json) says how many each record stands for.
    const bucket = openBucket(`file://${path.join(dir, 'bucket')}`)
    await shipPending({bucket, signer, spoolDir: path.join(dir, 'spool')})
    const listed = (await new SessionReader(bucket).list()).filter((x) => x.user === 'eve@example.com' && x.refused)
    expect(listed.reduce((k, x) => k + 1 + (x.refused!.alsoRefused ?? 0), 0)).toBe(n)
    expect(listed.find((x) => x.target === 'prod_secret')!.refused).toEqual({reason: 'not-allowed', alsoRefused: 4})
  })
})
