import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {afterAll, beforeAll, describe, expect, it, vi} from 'vitest'
import PolicyCheck from '../../src/commands/policy/check.js'
import PolicyLint from '../../src/commands/policy/lint.js'

/** The package root, so oclif finds package.json without searching from the test file. */
const root = fileURLToPath(new URL('../..', import.meta.url))
let dir: string
let config: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dbgate-policy-'))
  config = join(dir, 'dbgate.yaml')
  await writeFile(
    config,
    [
      'targets:',
      '  prod:',
      '    host: db.internal',
      '    database: app',
      '    user: app_rw',
      '    reviewers: [dba]',
      '    rules:',
      '      - id: hr',
      '        match: {tables: [salaries]}',
      '        action: warn',
      '        reason: salaries are sensitive',
      '      - id: no-delete',
      '        match: {command: [delete]}',
      '        action: deny',
      '      - id: shadowed',
      '        match: {command: [delete], class: write}',
      '        action: warn',
      '',
    ].join('\n'),
  )
})

afterAll(async () => {
  await rm(dir, {recursive: true, force: true})
  process.exitCode = undefined
})

/** Runs a command's promise, capturing what it prints (oclif logs through console.log). */
async function quietly<T>(fn: () => Promise<T>): Promise<{result: Awaited<T>; out: string}> {
  const lines: string[] = []
  const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')))
  try {
    return {result: (await fn()) as Awaited<T>, out: lines.join('\n')}
  } finally {
    spy.mockRestore()
  }
}

describe('dbgate policy check', () => {
  it('prints the report and fails when a statement would be denied', async () => {
    process.exitCode = undefined
    const {result, out} = await quietly(() => PolicyCheck.run(['prod', '--config', config, '--sql', 'SELECT * FROM salaries; TRUNCATE users'], root))
    expect(result.decision.action).toBe('deny')
    expect(out).toContain('[1] WARN     select (read)  rule hr')
    expect(out).toContain('[2] DENY     truncate (ddl)  rule default.no-truncate')
    expect(process.exitCode).toBe(1)
  })

  it('exits 0 when everything would run', async () => {
    process.exitCode = undefined
    const {result} = await quietly(() => PolicyCheck.run(['prod', '--config', config, '--sql', 'SELECT 1'], root))
    expect(result.decision.action).toBe('allow')
    expect(process.exitCode).toBeUndefined()
  })
})

describe('dbgate policy lint', () => {
  it('reports a rule that never fires, without failing for a warning', async () => {
    process.exitCode = undefined
    const {result, out} = await quietly(() => PolicyLint.run(['--config', config], root))
    expect(result).toEqual([{target: 'prod', issues: [expect.objectContaining({ruleId: 'shadowed', severity: 'warning'})]}])
    expect(out).toContain('prod: warning: rule shadowed: rule no-delete comes first and matches everything this rule does, so it never fires')
    expect(process.exitCode).toBeUndefined()
  })

  it('refuses, with the file, line and a suggestion, a command that no statement has', async () => {
    const typo = join(dir, 'typo.yaml')
    await writeFile(typo, ['targets:', '  prod:', '    host: db.internal', '    database: app', '    user: app_rw', '    rules:', '      - id: typo', '        match: {command: [dleete]}', '        action: deny', ''].join('\n'))
    await expect(quietly(() => PolicyLint.run(['--config', typo], root))).rejects.toThrow(
      /typo\.yaml:8:27 targets\.prod\.rules\[0\]\.match\.command\[0\]: "dleete" is not a statement kind dbgate reports, so a rule on it would never match — fix: write delete/,
    )
    process.exitCode = undefined
  })
})
