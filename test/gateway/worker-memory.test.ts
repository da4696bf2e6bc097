import {mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {workerMemoryDefaults} from '../../src/gateway/worker-memory.js'
import {fixture, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {gatewayConfigText, makePki, type TestPki} from './helpers.js'
import {GatewayProcess, until} from './process-helpers.js'

interface ProcessStart {
  pid: number
  argv: string[]
  env: Map<string, string>
}

/** What the kernel says a process was started with: its command line and its initial environment. */
async function processStart(pid: number): Promise<ProcessStart> {
  const nulSeparated = async (file: string) => (await readFile(`/proc/${pid}/${file}`, 'utf8')).split('\0').filter(Boolean)
  const env = new Map<string, string>()
  for (const kv of await nulSeparated('environ')) {
    const eq = kv.indexOf('=')
    env.set(kv.slice(0, eq), kv.slice(eq + 1))
  }
  return {pid, argv: await nulSeparated('cmdline'), env}
}

/** The processes whose parent is `parent`, from /proc/<pid>/stat (its fourth field, after the name in parentheses). */
async function childrenOf(parent: number): Promise<number[]> {
  const out: number[] = []
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '')
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (ppid === parent) out.push(Number(name))
  }
  return out
}

/** `--workers 2`: what each worker process really starts with, read from /proc, not from the gateway's word. */
describe('dbgate gateway --workers: the workers memory settings', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  const dirs: string[] = []
  const gateways: GatewayProcess[] = []

  const startWorkers = async (env: NodeJS.ProcessEnv): Promise<{primary: ProcessStart; workers: ProcessStart[]}> => {
    const dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwmem-'))
    dirs.push(dir)
    const file = path.join(dir, 'gateway.yaml')
    await writeFile(file, gatewayConfigText({pki, dir, issuer: f.dev.issuer, clientId: f.dev.cliClientId, server: ['ops: off'], targets: targetConfigText('app', db)}))
    const gw = new GatewayProcess(file, {...isolatedEnv(), TEST_APP_PASSWORD: db.password, ...env}, ['--workers', '2'])
    gateways.push(gw)
    await gw.started()
    const pids = await until(async () => {
      const found = await childrenOf(gw.pid)
      return found.length === 2 ? found : undefined
    })
    return {primary: await processStart(gw.pid), workers: await Promise.all(pids.map(processStart))}
  }

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwmem')])
  })
  afterAll(async () => {
    for (const gw of gateways) gw.kill()
    await Promise.all(gateways.map((gw) => gw.exited))
    await f?.close()
    await Promise.all([...dirs, pki?.dir].filter(Boolean).map((d) => rm(d!, {recursive: true, force: true})))
  })

  it('starts each worker with a 4 MB semi-space and two malloc arenas when the operator set neither', async () => {
    const {primary, workers} = await startWorkers({NODE_OPTIONS: undefined, MALLOC_ARENA_MAX: undefined, MALLOC_MMAP_THRESHOLD_: undefined, MALLOC_TRIM_THRESHOLD_: undefined})
    // The primary was started without them: the workers have them because the primary gave them.
    expect(primary.argv.some((a) => a.includes('semi-space'))).toBe(false)
    expect(primary.env.has('MALLOC_ARENA_MAX')).toBe(false)
    expect(workers).toHaveLength(2)
    for (const w of workers) {
      // node --max-semi-space-size=4 …/bin/run.js gateway --config … --workers 2
      expect(w.argv.slice(1, 2), `worker ${w.pid}: ${w.argv.join(' ')}`).toEqual(['--max-semi-space-size=4'])
      expect(w.argv.slice(2)).toEqual(primary.argv.slice(1))
      expect(w.env.get('MALLOC_ARENA_MAX'), `worker ${w.pid}`).toBe('2')
      expect(w.env.get('MALLOC_MMAP_THRESHOLD_'), `worker ${w.pid}`).toBe('131072')
      expect(w.env.has('NODE_OPTIONS')).toBe(false)
    }
  })

  it("keeps the operator's own settings", async () => {
    const {workers} = await startWorkers({NODE_OPTIONS: '--max-semi-space-size=16', MALLOC_ARENA_MAX: '4', MALLOC_MMAP_THRESHOLD_: '262144'})
    expect(workers).toHaveLength(2)
    for (const w of workers) {
      // No flag of ours on the command line: it would win over the operator's NODE_OPTIONS.
      expect(w.argv.filter((a) => a.includes('semi-space')), `worker ${w.pid}: ${w.argv.join(' ')}`).toEqual([])
      expect(w.env.get('NODE_OPTIONS')).toBe('--max-semi-space-size=16')
      expect(w.env.get('MALLOC_ARENA_MAX')).toBe('4')
      expect(w.env.get('MALLOC_MMAP_THRESHOLD_')).toBe('262144')
    }
  })

  it("keeps the primary's own node flags, and recognises the flag in each of V8's spellings", () => {
    expect(workerMemoryDefaults(['--enable-source-maps'], {}).execArgv).toEqual(['--enable-source-maps', '--max-semi-space-size=4'])
    for (const set of [['--max_semi_space_size=8'], ['--max-semi-space-size', '8']]) {
      expect(workerMemoryDefaults(set, {}).execArgv).toEqual(set)
    }
    expect(workerMemoryDefaults([], {NODE_OPTIONS: '--enable-source-maps --max_semi_space_size 8'}).execArgv).toEqual([])
    // Flags that only look alike are not the operator's choice of semi-space.
    expect(workerMemoryDefaults([], {NODE_OPTIONS: '--min-semi-space-size=1'}).execArgv).toEqual(['--max-semi-space-size=4'])
    expect(workerMemoryDefaults([], {MALLOC_ARENA_MAX: '8'}).env).toEqual({MALLOC_MMAP_THRESHOLD_: '131072'})
    expect(workerMemoryDefaults([], {MALLOC_ARENA_MAX: '8', MALLOC_TRIM_THRESHOLD_: '1048576'}).env).toEqual({})
    expect(workerMemoryDefaults([], {}).env).toEqual({MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072'})
  })
})
