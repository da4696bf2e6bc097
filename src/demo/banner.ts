/** What `dbgate demo` prints once everything is up: the tour, step by step, for three terminals. */
import path from 'node:path'
import {DBGATE_BIN} from './cli.js'
import type {DemoEnvironment, DemoPerson} from './demo.js'
import {DEMO_ALLOW, DEMO_DDL, DEMO_GATEWAY, DEMO_REVIEWERS, DEMO_TARGET} from './people.js'

export interface BannerStyle {
  bold(s: string): string
  dim(s: string): string
  green(s: string): string
  yellow(s: string): string
}

export const PLAIN: BannerStyle = {bold: (s) => s, dim: (s) => s, green: (s) => s, yellow: (s) => s}

export interface BannerOptions {
  /** Whether results are masked in this build. */
  masking: boolean
  /** Whether this build has the `dbgate approve` command. */
  approveCommand: boolean
}

const ROLE_GROUP_NOTE: Record<DemoPerson['role'], string> = {
  engineer: 'may connect',
  reviewer: 'may connect and approve',
  auditor: 'may not connect; reads the recordings',
}

/** The directory holding this checkout's `dbgate` command (bin/dbgate), for PATH. */
export const DBGATE_BIN_DIR = path.dirname(DBGATE_BIN)

/**
 * `export …` for one person, broken over lines with `\` so it pastes whole into any POSIX shell.
 * It puts this checkout's `dbgate` first on PATH, so the command works in a fresh terminal on a
 * machine where nothing was installed globally.
 */
export function exportLines(p: DemoPerson, binDir: string = DBGATE_BIN_DIR): string[] {
  const pairs = [`PATH=${shellWord(binDir)}:"$PATH"`, ...Object.entries(p.env).map(([k, v]) => `${k}=${shellWord(v)}`)]
  const lines: string[] = []
  for (let i = 0; i < pairs.length; i += 2) lines.push(pairs.slice(i, i + 2).join(' '))
  return lines.map((l, i) => `${i === 0 ? 'export ' : '       '}${l}${i < lines.length - 1 ? ' \\' : ''}`)
}

const shellWord = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`)

export function demoBanner(env: DemoEnvironment, opts: BannerOptions, s: BannerStyle = PLAIN): string {
  const [alice, bob, carol] = [env.person('alice'), env.person('bob'), env.person('carol')]
  const users = env.people.map((p) => `${p.user} (${p.groups.join(', ')})`).join(', ')
  const gw = env.gateway.address
  const out: string[] = [
    '',
    `${s.green('✓')} dbgate demo is running, on 127.0.0.1 only, with everything in ${env.dir}`,
    '',
    `  PostgreSQL  127.0.0.1:${env.database.port}, database ${DEMO_TARGET}: customers, orders, payments (fake personal data)`,
    `  Identity    ${env.idp.issuer}  ${s.yellow('DEVELOPMENT identity provider: fixed users, not for production')}`,
    `              users ${users}; each one's password is their user name`,
    `  Gateway     ${gw.host}:${gw.port} (PostgreSQL over TLS), API https://${env.gateway.api.host}:${env.gateway.api.port}, named ${DEMO_GATEWAY}`,
    `              certificate from a CA made just now: ${env.gateway.ca}`,
    `              ${env.gateway.configPath}: target ${DEMO_TARGET}, allow [${DEMO_ALLOW.join(', ')}], reviewers [${DEMO_REVIEWERS.join(', ')}];`,
    `              the only file that knows the database password; it enforces, masks, records and signs`,
    `  Bucket      ${env.bucketUrl}  (session recordings, approval requests)`,
    `  Config      ${env.configPath}`,
    `              the people's: the identity provider, the gateway and its CA; no targets, no database password`,
    '',
    `Open three terminals, one per person, and paste that person's environment first. It puts this`,
    `checkout's \`dbgate\` on PATH, and gives each their own token store, signing key and spool under`,
    `${env.dir}, as if on their own machine.`,
  ]
  for (const p of env.people) {
    out.push('', `  ${s.bold(`${p.user}, ${p.role}`)} ${s.dim(`(${p.groups.join(', ')}: ${ROLE_GROUP_NOTE[p.role]})`)}`)
    for (const line of exportLines(p)) out.push(`    ${line}`)
  }
  const step = (n: number, who: DemoPerson | undefined, title: string) => `${s.bold(`${n}. ${title}`)}${who ? s.dim(`  (as ${who.user})`) : ''}`
  out.push(
    '',
    step(1, undefined, 'Sign in, in each of the three terminals'),
    '     dbgate login',
    `     Open the URL it prints in a browser on this machine, type the code, and sign in with`,
    `     user name = password = the person's name (alice/alice, bob/bob, carol/carol).`,
    '',
    step(2, alice, 'Connect through dbgate and run some SQL'),
    `     dbgate connect ${DEMO_TARGET} -- psql`,
    `     ${DEMO_TARGET}=> select full_name, email, phone from customers limit 5;`,
    opts.masking
      ? '          e-mails and phone numbers come back masked: alice is not allowed to see them'
      : `          ${s.yellow('masking is not available in this build')}: the values come back as stored`,
    `     ${DEMO_TARGET}=> drop table customers;`,
    '          denied by the built-in guardrails, before it reaches PostgreSQL',
    `     ${DEMO_TARGET}=> ${DEMO_DDL};`,
    '          held: psql waits while dbgate files an approval request (note its id, apr-…)',
    '     The tunnel only relays: each session goes over TLS to the gateway, with alice\'s token as the password.',
    '     A CI job or an agent needs no tunnel at all:',
    `     PGPASSWORD=$(dbgate token) psql "host=${gw.host} port=${gw.port} sslmode=verify-full sslrootcert=${env.gateway.ca} dbname=${DEMO_TARGET} user=${alice.email}"`,
    '',
    step(3, bob, "Approve alice's statement"),
  )
  if (opts.approveCommand) {
    out.push(
      '     dbgate approve',
      "          pick the request, read the SQL, approve; alice's psql runs it within a second or so",
      '     Try `dbgate approve` as alice too: nobody can approve their own request.',
    )
  } else {
    out.push(`     ${s.yellow('`dbgate approve` is not available in this build')}: the request waits in ${env.bucketUrl.replace(/^file:\/\//, '')}/approvals`)
  }
  out.push(
    '',
    step(4, alice, 'Leave psql'),
    '     \\q      the session log is signed and shipped to the bucket',
    '',
    step(5, carol, 'Audit what happened'),
    '     dbgate sessions list',
    '     dbgate sessions search "drop table"',
    '     dbgate sessions replay <session id from the list>',
    `     dbgate sessions verify --all --signer ${DEMO_GATEWAY}`,
    '          the gateway signed the sessions; they verify only for an auditor who names it',
    `     dbgate report --since 1d --signer ${DEMO_GATEWAY} --out evidence    then open evidence/report.html`,
    '',
    s.dim(`To see the whole tour run by itself: dbgate demo --script`),
    s.dim(`Press Ctrl-C here to stop the gateway, PostgreSQL and the identity provider and delete ${env.dir}.`),
  )
  return out.join('\n')
}
