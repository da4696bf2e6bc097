import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {keyDir, policyCacheDir, sessionCacheDir, spoolDir, tokenDir, userConfigFile, userDir} from '../../src/util/paths.js'
import {run} from '../helpers/run.js'

const BIN = path.resolve('bin/run.js')

describe('user directories', () => {
  const home = {HOME: '/home/ana'}

  it('follow the XDG variables, and default under the home directory', () => {
    expect(userDir('config', home)).toBe('/home/ana/.config/dbgate')
    expect(userDir('data', home)).toBe('/home/ana/.local/share/dbgate')
    expect(userDir('state', home)).toBe('/home/ana/.local/state/dbgate')
    expect(userDir('cache', home)).toBe('/home/ana/.cache/dbgate')
    const xdg = {...home, XDG_CONFIG_HOME: '/x/c', XDG_DATA_HOME: '/x/d', XDG_STATE_HOME: '/x/s', XDG_CACHE_HOME: '/x/k'}
    expect([userConfigFile(xdg), tokenDir(xdg), keyDir(xdg), spoolDir(xdg), sessionCacheDir(xdg), policyCacheDir(xdg)]).toEqual([
      '/x/c/dbgate/config.yaml',
      '/x/c/dbgate/tokens',
      '/x/d/dbgate/keys',
      '/x/s/dbgate/spool',
      '/x/k/dbgate/sessions',
      '/x/k/dbgate/policies',
    ])
  })

  it('ignore a relative XDG value, as the specification requires, for every kind', () => {
    const relative = {...home, XDG_CONFIG_HOME: 'c', XDG_DATA_HOME: './d', XDG_STATE_HOME: 's/t', XDG_CACHE_HOME: '~/.cache'}
    expect(userDir('config', relative)).toBe('/home/ana/.config/dbgate')
    expect(userDir('data', relative)).toBe('/home/ana/.local/share/dbgate')
    expect(userDir('state', relative)).toBe('/home/ana/.local/state/dbgate')
    expect(userDir('cache', relative)).toBe('/home/ana/.cache/dbgate')
  })

  it('use %APPDATA% and %LOCALAPPDATA% on Windows when no XDG variable is set', () => {
    const env = {HOME: 'C:\\Users\\ana', APPDATA: '/appdata', LOCALAPPDATA: '/local'}
    expect(userDir('config', env, 'win32')).toBe('/appdata/dbgate')
    expect(userDir('state', env, 'win32')).toBe('/local/dbgate')
  })
})

describe('the CLI honours the same rule', () => {
  let home: string
  beforeAll(async () => {
    home = await mkdtemp(path.join(tmpdir(), 'dbgate-home-'))
  })
  afterAll(async () => {
    await rm(home, {recursive: true, force: true})
  })

  it('a relative XDG_STATE_HOME does not move the spool into the current directory', async () => {
    const r = await run('node', [BIN, 'sessions', 'status'], {cwd: home, env: {HOME: home, XDG_STATE_HOME: 'state', DBGATE_SPOOL_DIR: undefined}})
    expect(r.stdout.trim()).toBe(`Nothing waiting in ${path.join(home, '.local', 'state', 'dbgate', 'spool')}.`)
    expect(r.code).toBe(0)
  })
})
