import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {vi} from 'vitest'
import PolicyCheck from '../../src/commands/policy/check.js'

/** The package root, so oclif finds package.json without searching from the test file. */
const root = fileURLToPath(new URL('../..', import.meta.url))

/**
 * What `dbgate policy check prod --sql <sql>` prints for a target with the default pack and no
 * rules of its own (no connection: the built-ins only). The exit code it sets is cleared.
 */
export async function policyCheckOutput(sql: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dbgate-policy-check-'))
  const lines: string[] = []
  const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void lines.push(a.join(' ')))
  try {
    const config = join(dir, 'dbgate.yaml')
    await writeFile(config, ['targets:', '  prod:', '    host: db.internal', '    database: app', '    user: app_rw', '    reviewers: [dba]', ''].join('\n'))
    await PolicyCheck.run(['prod', '--config', config, '--sql', sql], root)
    return lines.join('\n')
  } finally {
    spy.mockRestore()
    process.exitCode = undefined
    await rm(dir, {recursive: true, force: true})
  }
}
