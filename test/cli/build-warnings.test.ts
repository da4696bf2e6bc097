/**
 * `npm run demo` builds first: its output must not open with an "oclif update available" notice
 * (from the oclif packaging tool, which otherwise also phones the npm registry in the background).
 */
import {mkdir, mkdtemp, readFile, rm, symlink, writeFile, copyFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, expect, it} from 'vitest'
import {run} from '../helpers/run.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dbgate-build-'))
})
afterAll(async () => {
  await rm(dir, {recursive: true, force: true})
})

it('the manifest step of the build prints no update notice, even when a newer oclif is known', async () => {
  const root = path.resolve('.')
  const work = path.join(dir, 'pkg')
  await mkdir(work)
  await copyFile(path.join(root, 'package.json'), path.join(work, 'package.json'))
  await symlink(path.join(root, 'node_modules'), path.join(work, 'node_modules'))
  await symlink(path.join(root, 'dist'), path.join(work, 'dist'))
  // What the notice is made from: a cached answer of the registry that a newer oclif exists.
  const cache = path.join(dir, 'cache')
  await mkdir(path.join(cache, 'oclif'), {recursive: true})
  await writeFile(path.join(cache, 'oclif', 'version'), JSON.stringify({latest: '99.0.0'}))
  const build = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')).scripts.build as string
  const manifestStep = build.split('&&').at(-1)!.trim()
  const r = await run('sh', ['-c', manifestStep], {cwd: work, env: {XDG_CACHE_HOME: cache, PATH: `${path.join(root, 'node_modules', '.bin')}:${process.env.PATH}`}})
  expect(r.code).toBe(0)
  expect(r.stdout + r.stderr).toContain('wrote manifest')
  expect(r.stdout + r.stderr).not.toMatch(/update available/)
  expect(r.stdout + r.stderr).not.toMatch(/oidc-provider WARNING|NodeVersionSupportWarning/)
})
