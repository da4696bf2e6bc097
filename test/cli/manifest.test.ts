import {readdirSync, readFileSync} from 'node:fs'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

/** `src/commands/sessions/list.ts` → `sessions:list`. */
function commandIds(dir: string, prefix: string[] = []): string[] {
  return readdirSync(dir, {withFileTypes: true}).flatMap((e) =>
    e.isDirectory() ? commandIds(path.join(dir, e.name), [...prefix, e.name]) : e.name.endsWith('.ts') ? [[...prefix, e.name.slice(0, -3)].join(':')] : [],
  )
}

describe('oclif.manifest.json', () => {
  // `oclif manifest` leaves out, without failing, a command whose module does not load: the
  // command would then vanish from the CLI of a build that looked green.
  it('lists every command in src/commands', () => {
    const manifest = JSON.parse(readFileSync('oclif.manifest.json', 'utf8')) as {commands: Record<string, unknown>}
    expect(Object.keys(manifest.commands).sort()).toEqual(commandIds('src/commands').sort())
  })
})
