import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'
import {CONFIG_INVALID, CONFIG_NOT_FOUND, CONFIG_UNREADABLE, ConfigError} from '../../src/config/errors.js'
import {loadConfig} from '../../src/config/load.js'

const targetFile = (host: string) => `targets:\n  t:\n    host: ${host}\n    database: app\n    user: u\n`

let root: string
let cwd: string
let home: string

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'dbgate-config-'))
  cwd = join(root, 'project')
  home = join(root, 'home')
  await mkdir(cwd, {recursive: true})
  await mkdir(join(home, '.config', 'dbgate'), {recursive: true})
})

afterEach(async () => {
  await rm(root, {recursive: true, force: true})
})

async function rejection(p: Promise<unknown>): Promise<ConfigError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(ConfigError)
  return err as ConfigError
}

describe('loadConfig discovery', () => {
  async function writeAll() {
    await writeFile(join(root, 'flag.yaml'), targetFile('from-flag'))
    await writeFile(join(root, 'env.yaml'), targetFile('from-env'))
    await writeFile(join(cwd, 'dbgate.yaml'), targetFile('from-cwd'))
    await writeFile(join(home, '.config', 'dbgate', 'config.yaml'), targetFile('from-user'))
  }
  const host = (c: {config: {targets: Record<string, {host: string}>}}) => c.config.targets.t!.host

  it('prefers --config over DBGATE_CONFIG, the working directory and the user directory', async () => {
    await writeAll()
    const loaded = await loadConfig({configPath: '../flag.yaml', cwd, env: {DBGATE_CONFIG: join(root, 'env.yaml')}, homeDir: home})
    expect(host(loaded)).toBe('from-flag')
    expect(loaded.path).toBe(join(root, 'flag.yaml'))
  })

  it('then DBGATE_CONFIG', async () => {
    await writeAll()
    const loaded = await loadConfig({cwd, env: {DBGATE_CONFIG: join(root, 'env.yaml')}, homeDir: home})
    expect(host(loaded)).toBe('from-env')
  })

  it('then ./dbgate.yaml', async () => {
    await writeAll()
    const loaded = await loadConfig({cwd, env: {}, homeDir: home})
    expect(host(loaded)).toBe('from-cwd')
    expect(loaded.path).toBe(join(cwd, 'dbgate.yaml'))
  })

  it('then ~/.config/dbgate/config.yaml', async () => {
    await writeFile(join(home, '.config', 'dbgate', 'config.yaml'), targetFile('from-user'))
    const loaded = await loadConfig({cwd, env: {}, homeDir: home})
    expect(host(loaded)).toBe('from-user')
  })

  it('then $XDG_CONFIG_HOME/dbgate/config.yaml instead of ~/.config', async () => {
    const xdg = join(root, 'xdg')
    await mkdir(join(xdg, 'dbgate'), {recursive: true})
    await writeFile(join(xdg, 'dbgate', 'config.yaml'), targetFile('from-xdg'))
    await writeFile(join(home, '.config', 'dbgate', 'config.yaml'), targetFile('from-user'))
    const loaded = await loadConfig({cwd, env: {XDG_CONFIG_HOME: xdg}, homeDir: home})
    expect(host(loaded)).toBe('from-xdg')
  })

  it('does not fall back when the file named by --config is missing', async () => {
    await writeAll()
    const err = await rejection(loadConfig({configPath: 'missing.yaml', cwd, env: {}, homeDir: home}))
    expect(err.code).toBe(CONFIG_NOT_FOUND)
    expect(err.message).toBe(`Config file ${join(cwd, 'missing.yaml')} (from --config) does not exist`)
  })

  it('does not fall back when the file named by DBGATE_CONFIG is missing', async () => {
    await writeAll()
    const err = await rejection(loadConfig({cwd, env: {DBGATE_CONFIG: join(root, 'nope.yaml')}, homeDir: home}))
    expect(err.message).toBe(`Config file ${join(root, 'nope.yaml')} (from DBGATE_CONFIG) does not exist`)
  })

  it('lists the places it looked in and a minimal example when there is no file', async () => {
    const err = await rejection(loadConfig({cwd, env: {}, homeDir: home}))
    expect(err.code).toBe(CONFIG_NOT_FOUND)
    expect(err.searched).toEqual([join(cwd, 'dbgate.yaml'), join(home, '.config', 'dbgate', 'config.yaml')])
    const text = err.format()
    expect(text).toContain(`Looked in:\n  ${join(cwd, 'dbgate.yaml')}\n  ${join(home, '.config', 'dbgate', 'config.yaml')}`)
    expect(text).toContain('targets:\n  prod:\n    host: db.internal')
  })

  it('reports a directory given as the config file as unreadable', async () => {
    const err = await rejection(loadConfig({configPath: cwd, env: {}, homeDir: home}))
    expect(err.code).toBe(CONFIG_UNREADABLE)
    expect(err.hint).toBe('Point to the YAML file, not its directory.')
  })

  it('names the real file in validation errors and returns warnings with the config', async () => {
    const file = join(cwd, 'dbgate.yaml')
    await writeFile(file, 'targets:\n  t:\n    host: h\n    database: d\n    user: u\n    password: hunter2\n    port: 0\n')
    const err = await rejection(loadConfig({cwd, env: {}, homeDir: home}))
    expect(err.code).toBe(CONFIG_INVALID)
    expect(err.issues.map((i) => `${i.file}:${i.line}:${i.column} ${i.keyPath}`)).toEqual([`${file}:7:11 targets.t.port`])
    expect(err.format({cwd})).toContain('dbgate.yaml:7:11 targets.t.port: expected an integer between 1 and 65535, got 0')

    await writeFile(file, 'targets:\n  t:\n    host: h\n    database: d\n    user: u\n    password: hunter2\n')
    const loaded = await loadConfig({cwd, env: {}, homeDir: home})
    expect(loaded.warnings.map((w) => `${w.file}:${w.line} ${w.keyPath} ${w.kind}`)).toEqual([`${file}:6 targets.t.password inline-secret`])
  })
})
