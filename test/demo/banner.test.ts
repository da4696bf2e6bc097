/**
 * The demo's per-person environment, pasted into a fresh terminal on a machine where nothing was
 * installed globally, must give a working `dbgate` command.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, expect, it} from 'vitest'
import {exportLines} from '../../src/demo/banner.js'
import type {DemoPerson} from '../../src/demo/demo.js'
import {run} from '../helpers/run.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dbgate banner '))
})
afterAll(async () => {
  await rm(dir, {recursive: true, force: true})
})

it("a person's pasted environment puts a working dbgate on PATH, from any directory", async () => {
  const alice: DemoPerson = {
    user: 'alice',
    role: 'engineer',
    groups: ['engineering'],
    home: path.join(dir, 'alice'),
    env: {DBGATE_CONFIG: path.join(dir, 'dbgate.yaml'), DBGATE_KEYRING: 'off', XDG_CONFIG_HOME: path.join(dir, 'alice', 'config')},
  } as unknown as DemoPerson
  const pasted = exportLines(alice).join('\n')
  expect(pasted).toMatch(/^export PATH=/)
  // A login shell's PATH: node is there, no dbgate is.
  const r = await run('sh', ['-c', `${pasted}\ncd /\ncommand -v dbgate >/dev/null && dbgate --version && echo "$DBGATE_CONFIG"`], {env: {PATH: path.dirname(process.execPath) + ':/usr/bin:/bin'}})
  expect(r.stderr).toBe('')
  expect(r.stdout).toMatch(/^dbgate\/\d+\.\d+\.\d+/)
  expect(r.stdout).toContain(path.join(dir, 'dbgate.yaml'))
})
