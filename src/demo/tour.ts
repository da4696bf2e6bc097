/**
 * `dbgate demo --script`: the newcomer's tour, played unattended against the real pieces. Logins
 * and the auditor's commands run the `dbgate` executable as each person; the development
 * provider's "browser" approves each device code over HTTP; alice's SQL goes through a real
 * `dbgate connect` tunnel to the demo's gateway, which enforces everything; bob decides with
 * `dbgate approve` (or, in a build without that command, through the approvals core it calls);
 * carol trusts the sessions the gateway signed by naming it (`--signer`).
 */
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import pg from 'pg'
import {approveDeviceCode} from '../dev/oidc-dev-browser.js'
import type {SessionSummary} from '../audit/index-cache.js'
import {openBucket} from '../bucket/index.js'
import type {SearchMatch} from '../audit/read.js'
import type {Report} from '../report/model.js'
import {cliApprovals, coreApprovals} from './approver.js'
import {CliRunner, type CliResult, type LiveCli} from './cli.js'
import type {DemoEnvironment, DemoPerson} from './demo.js'
import {demoFeatures, MISSING_MASKING} from './features.js'
import {DEMO_DDL, DEMO_GATEWAY, DEMO_TARGET} from './people.js'
import {sampleCustomers} from './sample-data.js'
import {oneLine, runSteps, StepSkipped, type Step, type StepResult} from './steps.js'

const SELECT_EMAILS = 'select id, full_name, email from customers order by id limit 5'
const DROP = 'drop table customers'

export interface TourOptions {
  onStep: (r: StepResult) => void
  /** Ends the tour early (Ctrl-C); whatever was started is still stopped. */
  signal?: AbortSignal
  /** Whether this build has `dbgate approve` and `dbgate approvals list`; without them the tour calls their core. */
  approvalCommands: boolean
  /** The demo directory is kept afterwards (`--keep`), so files written in it may be named. */
  keep?: boolean
}

function failure(what: string, r: CliResult): Error {
  const said = (r.stderr.trim() || r.stdout.trim()).split('\n').filter(Boolean).at(-1) ?? 'no output'
  return new Error(`${what} exited with ${r.code ?? r.signal}: ${oneLine(said, 160)}`)
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms / 1000} s`)), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

/** Everything a running tour holds, so that every exit path can release it. */
class TourState {
  readonly cli = new CliRunner()
  tunnel?: LiveCli
  client?: pg.Client
  notices: string[] = []
  held?: Promise<unknown>
  approvalId?: string
  sessionId?: string

  async release(): Promise<void> {
    // A statement still held must not leave an unhandled rejection behind when its client goes.
    this.held?.catch(() => {})
    await this.client?.end().catch(() => {})
    this.client = undefined
    await this.cli.stopAll()
  }
}

/** Waits until the bucket holds at least `n` shipped session logs; their keys. */
async function sessionLogs(bucketUrl: string, n: number, timeoutMs: number): Promise<string[]> {
  const bucket = openBucket({url: bucketUrl})
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const keys: string[] = []
    for await (const o of bucket.list('sessions/')) if (o.key.endsWith('.jsonl.gz')) keys.push(o.key)
    if (keys.length >= n) return keys
    if (Date.now() > deadline) throw new Error(`no session log reached ${bucketUrl} within ${timeoutMs / 1000} s`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

export async function runTour(env: DemoEnvironment, opts: TourOptions): Promise<StepResult[]> {
  const state = new TourState()
  const alice = env.person('alice')
  const bob = env.person('bob')
  const carol = env.person('carol')
  const features = demoFeatures()
  const configArgs = ['--config', env.configPath]
  const approvals = opts.approvalCommands ? cliApprovals(state.cli, env.configPath) : coreApprovals(env.configPath)

  const login = (p: DemoPerson): Step => ({
    title: `${p.user} (${p.role}) signs in with a device code`,
    async run() {
      let approving: Promise<unknown> | undefined
      const result = await state.cli.run(['login', '--no-browser', ...configArgs], p.env, {
        onStderr(text) {
          const prompt = /open (\S+) and enter the code (\S+)/.exec(text)
          if (prompt && !approving) {
            // The person at the browser: the dev provider's page, user name = password = the user.
            approving = approveDeviceCode({verificationUri: prompt[1]!, userCode: prompt[2]!, user: p.user, password: p.user})
            approving.catch(() => {})
          }
        },
      })
      if (!approving) throw new Error(`\`dbgate login\` showed no device code: ${oneLine(result.stderr, 160)}`)
      await approving
      if (result.code !== 0) throw failure('`dbgate login`', result)
      const said = result.stdout.trim()
      if (!said.includes(p.email) || !p.groups.every((g) => said.includes(g))) throw new Error(`unexpected sign-in: ${oneLine(said)}`)
      return said
    },
  })

  const steps: Step[] = [
    login(alice),
    login(bob),
    login(carol),
    {
      title: `alice opens a tunnel to ${DEMO_TARGET} through the gateway (dbgate connect)`,
      async run() {
        // The people's configuration names the gateway and the CA; the database and its password are the gateway's alone.
        const config = await readFile(env.configPath, 'utf8')
        if (/password|targets:/.test(config)) throw new Error(`${env.configPath} holds targets or a password; only the gateway may`)
        state.tunnel = state.cli.start(['connect', DEMO_TARGET, '--json', ...configArgs], alice.env)
        const tunnel = state.tunnel
        // Ready once it has printed both its JSON line (stdout) and whom it runs as (stderr).
        const ready = new Promise<{url: string; port: number; who: string}>((resolve, reject) => {
          const check = () => {
            const line = tunnel.stdout().split('\n').find((l) => l.startsWith('{'))
            const who = /Connected as .*/.exec(tunnel.stderr())?.[0]
            if (line && who) resolve({...(JSON.parse(line) as {url: string; port: number}), who})
          }
          tunnel.child.stdout.on('data', check)
          tunnel.child.stderr.on('data', check)
          tunnel.exited.then((r) => reject(failure('`dbgate connect`', r)), reject)
        })
        const info = await withTimeout(ready, 60_000, 'the tunnel')
        if (!info.who.includes(alice.email)) throw new Error(`the tunnel runs as someone else: ${info.who}`)
        const client = new pg.Client({connectionString: info.url, application_name: 'dbgate-demo'})
        client.on('notice', (n) => state.notices.push(n.message ?? ''))
        // A tunnel error after the tour moved on must not crash it; the next query reports it.
        client.on('error', () => {})
        await client.connect()
        state.client = client
        const gw = env.gateway.address
        return `listening on 127.0.0.1:${info.port}, sessions go over TLS (verify-full) to the gateway ${gw.host}:${gw.port}; ${info.who}; no database password on alice's side`
      },
    },
    {
      title: 'alice selects customer e-mails',
      async run() {
        const rows = (await state.client!.query<{id: number; email: string | null}>(SELECT_EMAILS)).rows
        // The query runs either way, so the audit trail below has it to show.
        if (!features.masking) throw new StepSkipped(MISSING_MASKING)
        const real = new Map(sampleCustomers().map((c) => [c.id, c.email]))
        if (rows.length !== 5) throw new Error(`expected 5 rows, got ${rows.length}`)
        for (const row of rows) {
          const original = real.get(row.id)!
          if (row.email === original || (row.email ?? '').includes(original.split('@')[0]!)) throw new Error(`customer ${row.id}'s e-mail came back unmasked: ${row.email}`)
        }
        return `${rows.length} rows, e-mails masked (${real.get(rows[0]!.id)} → ${rows[0]!.email ?? 'NULL'})`
      },
    },
    {
      title: `alice's "${DROP}" is denied`,
      async run() {
        const error = await state.client!.query(DROP).then(
          () => undefined,
          (e: Error & {code?: string}) => e,
        )
        if (!error) throw new Error('the DROP ran')
        if (error.code !== '42501') throw new Error(`expected a policy denial (42501), got ${error.code}: ${error.message}`)
        const {rows} = await state.client!.query<{n: number}>('select count(*)::int as n from customers')
        if (rows[0]!.n !== sampleCustomers().length) throw new Error(`customers has ${rows[0]!.n} rows after the denied DROP`)
        return `${oneLine(error.message, 140)} (customers still has ${rows[0]!.n} rows)`
      },
    },
    {
      title: `alice's "${DEMO_DDL}" waits for approval`,
      async run() {
        const before = state.notices.length
        state.held = state.client!.query(DEMO_DDL)
        state.held.catch(() => {})
        const find = () => state.notices.slice(before).map((n) => /waiting for approval (apr-[a-z0-9]+)/.exec(n)?.[1]).find(Boolean)
        await withTimeout(
          (async () => {
            while (!find()) {
              const settled = await Promise.race([state.held!.then(() => 'ran', () => 'failed'), new Promise((r) => setTimeout(r, 50, 'waiting'))])
              if (settled !== 'waiting') throw new Error(`the statement ${settled} without waiting for approval`)
            }
          })(),
          20_000,
          'the approval notice',
        )
        state.approvalId = find()!
        const notice = state.notices.slice(before).find((n) => n.includes(state.approvalId!))!
        return oneLine(notice.replace(/^dbgate: /, '').replace(/; run `.*$/, ''), 160)
      },
    },
    {
      title: `bob (reviewer) sees the request waiting for him (${approvals.listVia})`,
      async run() {
        const ids = await approvals.pending(bob)
        if (!ids.includes(state.approvalId!)) throw new Error(`${state.approvalId} is not among bob's pending requests (${ids.join(', ') || 'none'})`)
        return `${state.approvalId} is pending for bob`
      },
    },
    {
      title: `alice cannot approve her own request (${approvals.via})`,
      async run() {
        const reply = await approvals.approve(alice, state.approvalId!)
        if (reply.ok) throw new Error(`alice approved her own statement: ${reply.said}`)
        if (!/own request/.test(reply.said)) throw new Error(`refused, but not as her own request: ${reply.said}`)
        return `refused: ${reply.said}`
      },
    },
    {
      title: `bob approves it (${approvals.via})`,
      async run() {
        const reply = await approvals.approve(bob, state.approvalId!, 'demo: index for the orders report')
        if (!reply.ok) throw new Error(reply.said)
        await withTimeout(state.held!, 30_000, 'the approved statement')
        const {rows} = await state.client!.query<{n: number}>("select count(*)::int as n from pg_indexes where indexname = 'orders_placed_at_idx'")
        if (rows[0]!.n !== 1) throw new Error('the statement finished but the index does not exist')
        const granted = state.notices.find((n) => n.includes(`approval ${state.approvalId} granted`))
        if (!granted) throw new Error("alice's client was not told the approval was granted")
        return `${reply.said} → alice's client is told: ${oneLine(granted.replace(/^dbgate: /, ''), 120)}`
      },
    },
    {
      title: 'alice closes the tunnel; the gateway ships her session to the bucket',
      async run() {
        await state.client!.end()
        state.client = undefined
        const r = await state.cli.interrupt(state.tunnel!)
        if (r.code !== 0) throw failure('`dbgate connect`', r)
        // The gateway signs and ships the session once alice's pipeline goes idle (server.pipelineIdle).
        const shipped = await sessionLogs(env.bucketUrl, 1, 30_000)
        return `tunnel closed (exit 0); ${shipped[0]} in ${env.bucketUrl}`
      },
    },
    {
      title: 'carol (auditor) lists sessions',
      async run() {
        const r = await state.cli.run(['sessions', 'list', '--json', ...configArgs], carol.env)
        if (r.code !== 0) throw failure('`dbgate sessions list`', r)
        const {sessions} = JSON.parse(r.stdout) as {sessions: SessionSummary[]}
        const s = sessions.find((x) => x.user === alice.email && x.target === DEMO_TARGET)
        if (!s) throw new Error(`no session by ${alice.email} among ${sessions.length}`)
        if (s.totals.denied < 1) throw new Error(`session ${s.sessionId} records no denied statement`)
        state.sessionId = s.sessionId
        return `${s.sessionId} by ${s.user} on ${s.target}: ${s.totals.statements} statements, ${s.totals.denied} denied, ${s.status}`
      },
    },
    {
      title: 'carol searches for "drop table"',
      async run() {
        const r = await state.cli.run(['sessions', 'search', 'drop table', '--json', ...configArgs], carol.env)
        if (r.code !== 0) throw failure('`dbgate sessions search`', r)
        const hit = (JSON.parse(r.stdout) as {matches: SearchMatch[]}).matches.find((m) => m.sessionId === state.sessionId)
        if (!hit) throw new Error(`no match in session ${state.sessionId}`)
        if (hit.decision !== 'deny') throw new Error(`the DROP is recorded as ${hit.decision}, not deny`)
        return `${hit.user} ran "${hit.sql}" at ${hit.ts}: ${hit.decision}`
      },
    },
    {
      title: 'carol replays the session',
      async run() {
        const r = await state.cli.run(['sessions', 'replay', state.sessionId!, '--no-wait', ...configArgs], carol.env)
        if (r.code !== 0) throw failure('`dbgate sessions replay`', r)
        for (const text of [SELECT_EMAILS, DROP, DEMO_DDL, state.approvalId!]) if (!r.stdout.includes(text)) throw new Error(`the replay does not show "${text}"`)
        return `${r.stdout.trim().split('\n').length} lines, showing the SELECT, the denied DROP and the CREATE INDEX approved as ${state.approvalId}`
      },
    },
    {
      title: `carol verifies every session, trusting the gateway's key (--signer ${DEMO_GATEWAY})`,
      async run() {
        const r = await state.cli.run(['sessions', 'verify', '--all', '--signer', DEMO_GATEWAY, ...configArgs], carol.env)
        if (r.code !== 0) throw failure('`dbgate sessions verify --all`', r)
        const lines = r.stdout.trim().split('\n').filter(Boolean)
        if (lines.length === 0 || !lines.every((l) => l.startsWith('OK'))) throw new Error(`not every session verified: ${oneLine(r.stdout, 160)}`)
        const mine = lines.find((l) => l.includes(state.sessionId!))
        if (!mine) throw new Error(`session ${state.sessionId} was not verified: ${oneLine(r.stdout, 160)}`)
        return oneLine(mine)
      },
    },
    {
      title: 'carol writes the compliance report (HTML, JSON, Markdown)',
      async run() {
        const out = path.join(carol.home, 'evidence')
        const r = await state.cli.run(['report', '--since', '1d', '--signer', DEMO_GATEWAY, '--out', out, '--json', ...configArgs], carol.env)
        if (r.code !== 0) throw failure('`dbgate report`', r)
        const {summary, files} = JSON.parse(r.stdout) as {summary: Report['summary']; files: {html: string}}
        if (summary.denied < 1 || summary.approved < 1) throw new Error(`the report misses the denied DROP or the approval: ${summary.denied} denied, ${summary.approved} approved`)
        if (summary.logsFailingVerification > 0) throw new Error(`${summary.logsFailingVerification} session log(s) fail verification in the report`)
        const where = opts.keep ? files.html : 'report.html written; it goes with the demo directory (--keep keeps it)'
        return `${summary.sessions} session(s), ${summary.statements} statements, ${summary.denied} denied, ${summary.approved} approved, ${summary.maskedValues} values masked: ${where}`
      },
    },
  ]

  const abortable = steps.map(
    (s): Step => ({
      title: s.title,
      run: () => {
        if (opts.signal?.aborted) return Promise.reject(new Error('interrupted'))
        return s.run()
      },
    }),
  )
  try {
    return await runSteps(abortable, opts.onStep)
  } finally {
    await state.release()
  }
}
