/**
 * `dbgate sessions replay` as an auditor sees it, through the built binary: on a real terminal
 * (`script`), with the session's own timing. Keys are shown, an idle stretch is shortened and
 * said to be, masked columns and decisions read as words, colours follow FORCE_COLOR and NO_COLOR,
 * and an ambiguous prefix says how many it left out.
 */
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {FileBucket} from '../../src/bucket/index.js'
import {run} from '../helpers/run.js'
import {ada, bob, recordFixture, type FixtureSession} from '../report/fixture.js'
import {removeTempDirs, tempDir} from './helpers.js'

const BIN = path.resolve('bin/run.js')
let bucketUrl: string
let home: string
const t = (s: number) => new Date(Date.UTC(2026, 10, 22, 9, 0, s))
const MASKED = [
  'email (result 0, column 1): email, partial, lineage; public.customers.email: the column name matches /(^|_)e-?mail(_?addr(ess)?)?($|_)/i and values match /^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$/i',
  'phone (result 0, column 2): phone, partial, lineage; public.customers.phone: the column name matches /(^|_)(tele)?phone(_?(no|number))?($|_)|(^|_)mobile($|_)/i',
]

beforeAll(async () => {
  const dir = await tempDir('dbgate-replay-bucket-')
  const sessions: FixtureSession[] = [
    {
      id: 'replay-main-0001',
      identity: ada,
      target: 'shop',
      start: t(0),
      ending: 'ended',
      statements: [
        // 21 seconds pass before the first statement: the person was typing.
        {sql: 'select email, phone from customers limit 5', at: t(21), class: 'read', decision: 'allow', rows: 5, maskedColumns: MASKED, maskedValues: 10},
        {
          sql: 'drop index orders_placed_at_idx',
          at: t(23),
          class: 'ddl',
          decision: 'approval_denied',
          outcome: 'rejected',
          approval: {id: 'apr-denied00001', requestedAt: t(22), outcome: 'denied', reviewer: bob, reason: 'not now', decidedAt: t(23)},
        },
      ],
    },
    ...Array.from({length: 7}, (_, i): FixtureSession => ({id: `rp-${i}-${'x'.repeat(8)}`, identity: ada, target: 'shop', start: t(30 + i), ending: 'ended', statements: []})),
  ]
  await recordFixture(sessions, new FileBucket(dir), tempDir)
  bucketUrl = `file://${dir}`
  home = await tempDir('dbgate-replay-home-')
})
afterAll(async () => {
  await removeTempDirs()
})

/** Runs dbgate on a real terminal, as an auditor does. */
function onTerminal(args: string[], env: NodeJS.ProcessEnv = {}) {
  const line = ['node', BIN, ...args].map((a) => `'${a}'`).join(' ')
  return run('script', ['-qec', line, '/dev/null'], {env: {XDG_CACHE_HOME: home, DBGATE_CONFIG: undefined, NO_COLOR: undefined, FORCE_COLOR: undefined, ...env}, timeoutMs: 60_000})
}

describe('dbgate sessions replay with timing, on a terminal', () => {
  it('shows the keys, shortens a long idle wait and says by how much', async () => {
    const r = await onTerminal(['sessions', 'replay', 'replay-main', '--bucket', bucketUrl], {NO_COLOR: '1'})
    const out = r.stdout.replace(/\r/g, '')
    expect(out).toContain('Keys: space pause/resume · s skip the wait · q stop')
    expect(out).toContain('… 21s with nothing happening, shortened to 3s')
    expect(out.indexOf('shortened to 3s')).toBeLessThan(out.indexOf('select email, phone from customers'))
  })

  it('names masked columns briefly and spells decisions the same way everywhere', async () => {
    const r = await onTerminal(['sessions', 'replay', 'replay-main', '--bucket', bucketUrl, '--no-wait'], {NO_COLOR: '1'})
    const out = r.stdout.replace(/\r/g, '')
    expect(out).toContain('    masked: email (email, partial), phone (phone, partial)')
    expect(out).not.toContain('/i')
    expect(out).toContain('APPROVAL DENIED ddl')
    expect(out).not.toContain('APPROVAL_DENIED')
  })

  it('prints no colour with FORCE_COLOR=0 or NO_COLOR, and colour otherwise', async () => {
    for (const env of [{FORCE_COLOR: '0'}, {NO_COLOR: '1'}]) {
      const r = await onTerminal(['sessions', 'replay', 'replay-main', '--bucket', bucketUrl, '--no-wait'], env)
      expect(r.stdout).toContain('select email, phone from customers')
      expect(r.stdout).not.toMatch(/\x1b\[\d+m/)
    }
    const coloured = await onTerminal(['sessions', 'replay', 'replay-main', '--bucket', bucketUrl, '--no-wait'])
    expect(coloured.stdout).toMatch(/\x1b\[\d+m/)
  })

  it('says how many sessions an ambiguous prefix matched, and how many it did not list', async () => {
    const r = await run('node', [BIN, 'sessions', 'replay', 'rp-', '--bucket', bucketUrl, '--no-wait'], {env: {XDG_CACHE_HOME: home, DBGATE_CONFIG: undefined}})
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/matches 7 sessions: (rp-\d-x{8}, ){4}rp-\d-x{8} and 2 more;/)
    const empty = await run('node', [BIN, 'sessions', 'replay', '', '--bucket', bucketUrl, '--no-wait'], {env: {XDG_CACHE_HOME: home, DBGATE_CONFIG: undefined}})
    expect(empty.stderr).toContain('give a session id, or the first characters of one')
  })
})
