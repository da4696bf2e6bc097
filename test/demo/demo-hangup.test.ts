/**
 * Closing the terminal that runs `dbgate demo`: the process gets SIGHUP and its stdout and stderr
 * go away with the terminal. It must still stop its PostgreSQL and remove the demo directory.
 */
import {spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import {readdir, readFile, rm} from 'node:fs/promises'
import path from 'node:path'
import {expect, it} from 'vitest'
import {waitFor} from '../helpers/wait.js'

const BIN = path.resolve('bin/run.js')

/** Live processes whose command line is a postgres server on `port`, read from /proc. */
async function postgresOn(port: number): Promise<number[]> {
  const found: number[] = []
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0')
    if (args[0]?.endsWith('/postgres') && args.includes('-p') && args[args.indexOf('-p') + 1] === String(port)) found.push(Number(pid))
  }
  return found
}

it('opens without library warnings; SIGHUP with the terminal gone stops PostgreSQL and removes the demo directory, like Ctrl-C', async () => {
  const child = spawn(process.execPath, [BIN, 'demo'], {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, NO_COLOR: '1'}})
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  let dir: string | undefined
  let port: number | undefined
  try {
    await new Promise<void>((resolve, reject) => {
      const check = () => out.includes('Press Ctrl-C here') && resolve()
      child.stdout.on('data', check)
      child.stderr.on('data', check)
      child.on('exit', (code) => reject(new Error(`demo exited early (${code}):\n${out}`)))
    })
    dir = /with everything in (\S+)/.exec(out)![1]!
    port = Number(/PostgreSQL {2}127\.0\.0\.1:(\d+)/.exec(out)![1])
    expect(existsSync(dir)).toBe(true)
    expect(await postgresOn(port)).toHaveLength(1)
    // dbgate supports Node 20.19+: its libraries' "use Node 22" notices are not the person's concern.
    expect(out).not.toMatch(/oidc-provider WARNING|Unsupported runtime|NodeVersionSupportWarning|update available/)

    // The terminal closes: nothing reads its output any more, and the process is hung up on.
    child.stdout.destroy()
    child.stderr.destroy()
    child.kill('SIGHUP')
    expect(await exited).toBe(0)
    expect(await postgresOn(port)).toEqual([])
    expect(existsSync(dir)).toBe(false)
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
    // Whatever a failing run left behind is this test's to clean up.
    if (port) for (const pid of await postgresOn(port)) process.kill(pid, 'SIGINT')
    if (dir) await rm(dir, {recursive: true, force: true})
  }
}, 120_000)

it('--keep stops PostgreSQL but keeps the demo directory to look at afterwards', async () => {
  const child = spawn(process.execPath, [BIN, 'demo', '--keep'], {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, NO_COLOR: '1'}})
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  let dir: string | undefined
  let port: number | undefined
  try {
    await waitFor(() => out.includes('Press Ctrl-C here') || child.exitCode !== null, 'the demo is up (or has exited)', {timeoutMs: 90_000, intervalMs: 100})
    dir = /with everything in (\S+)/.exec(out)![1]!
    port = Number(/PostgreSQL {2}127\.0\.0\.1:(\d+)/.exec(out)![1])
    child.kill('SIGINT')
    expect(await exited).toBe(0)
    expect(out).toContain(`stopped; kept ${dir}`)
    expect(await postgresOn(port)).toEqual([])
    expect(existsSync(path.join(dir, 'dbgate.yaml'))).toBe(true)
    expect(existsSync(path.join(dir, 'bucket'))).toBe(true)
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
    if (port) for (const pid of await postgresOn(port)) process.kill(pid, 'SIGINT')
    if (dir) await rm(dir, {recursive: true, force: true})
  }
}, 120_000)
