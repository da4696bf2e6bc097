import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parseDuration as yamlDuration} from '../../src/config/units.js'
import {formatDuration, parseDuration, parseWhen} from '../../src/util/duration.js'
import {run} from '../helpers/run.js'

const BIN = path.resolve('bin/run.js')

describe('one duration grammar', () => {
  it.each([
    ['30s', 30_000],
    ['15m', 900_000],
    ['1h30m', 5_400_000],
    ['1d', 86_400_000],
    ['1w', 604_800_000],
    ['1y', 31_536_000_000],
    ['1d 12h', 129_600_000],
  ])('%s', (text, ms) => {
    expect(parseDuration(text)).toBe(ms)
    // YAML reads the same text the same way.
    expect(yamlDuration(text)).toBe(ms)
  })

  it('refuses what is not one, or is absurdly long, and bare numbers outside YAML', () => {
    for (const bad of ['soon', '1x', '30m1h', '1.5h', '', '100000d', '11y']) expect(parseDuration(bad)).toBeUndefined()
    expect(parseDuration('30')).toBeUndefined()
    expect(yamlDuration('30')).toBe(30_000)
  })

  it('writes durations back in the same grammar', () => {
    expect(formatDuration(5_400_000)).toBe('1h30m')
    expect(formatDuration(604_800_000)).toBe('1w')
  })

  it('reads points in time as a duration before now or a date', () => {
    const now = new Date('2026-03-08T00:00:00Z')
    expect(parseWhen('1w', now).toISOString()).toBe('2026-03-01T00:00:00.000Z')
    expect(parseWhen('1h30m', now).toISOString()).toBe('2026-03-07T22:30:00.000Z')
    expect(parseWhen('2026-03-02', now, {endOfDay: true}).toISOString()).toBe('2026-03-02T23:59:59.999Z')
    expect(() => parseWhen('100000d', now)).toThrow(/longer than the 10 years/)
  })
})

describe('the same grammar on the command line', () => {
  let dir: string
  const dbgate = (...args: string[]) => run('node', [BIN, ...args], {cwd: dir, env: {XDG_CACHE_HOME: dir, DBGATE_CONFIG: undefined}})
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-duration-'))
  })
  afterAll(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  it('takes 1y and 1h30m in --since, as YAML does', async () => {
    for (const since of ['1y', '1h30m', '1w']) {
      const r = await dbgate('sessions', 'list', '--since', since, '--bucket', `file://${dir}`)
      expect(r.stderr.trim()).toBe('No sessions match.')
      expect(r.code).toBe(0)
    }
  })

  it('answers an absurd --since with a clear usage error, not a crash', async () => {
    const r = await dbgate('report', '--since', '100000d', '--bucket', `file://${dir}`, '--out', path.join(dir, 'out'))
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--since: "100000d" is longer than the 10 years \(3650d\) dbgate accepts/)
    expect(r.stderr).not.toMatch(/RangeError|stack/)
  })
})
