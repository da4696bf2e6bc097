import {resolve} from 'node:path'
import {Flags} from '@oclif/core'
import chalk from 'chalk'
import {readKeyFiles, resolveBucket, resolveSignerTrust} from '../audit/cli.js'
import {unmatchedSigners} from '../audit/trust.js'
import {bucketFlags, signerFlag, whenFlag} from '../cli/flags.js'
import {parseWhen} from '../util/duration.js'
import {dbgateVersion} from '../connect/recording.js'
import {FRAMEWORKS, type Framework, type Report} from '../report/model.js'
import {produceReport} from '../report/produce.js'
import {DbgateCommand} from '../cli/base-command.js'
import {visible} from '../util/visible.js'

export default class ReportCommand extends DbgateCommand {
  static override summary = 'Write compliance evidence for a period: report.html, report.json and report.md.'
  static override description = `Reads the recorded sessions of the period from the bucket (through the same local cache as \`dbgate sessions\`), verifies every log against the published signing keys, and writes into --out:

  report.html  one self-contained page: summary, charts, privileged and destructive attempts, approvals, identities, sessions needing attention, a section per control, and the integrity of every log
  report.json  the same figures, for tracking and for other tools
  report.md    a short version for tickets

The report states its period, its sources and every gap (days with no logs, logs that fail verification, unfinished sessions) rather than leaving them out. SQL is shown normalized (literals replaced by $1, $2, …) unless --full-sql is given.`
  static override examples = [
    '$ dbgate report --since 30d --out evidence/2026-11',
    '$ dbgate report --since 2026-07-01 --until 2026-09-30 --target prod --framework soc2 --out soc2-q3',
    '$ dbgate report --since 90d --framework iso27001 --framework fedramp --out evidence --json',
  ]
  static override enableJsonFlag = true
  static override flags = {
    ...bucketFlags,
    since: whenFlag('Start of the period: a duration before now (30d, 12w, 1y) or an ISO date. Default: 30d.'),
    until: whenFlag('End of the period: a duration before now or an ISO date (a bare date means the end of that day). Default: now.', {endOfDay: true}),
    target: Flags.string({char: 't', summary: 'Only sessions on this target.', helpValue: '<name>'}),
    framework: Flags.string({summary: 'Map evidence to this framework\'s controls (repeatable). Default: all three.', options: [...FRAMEWORKS], multiple: true}),
    out: Flags.string({char: 'o', summary: 'Directory to write the report into (created if missing).', default: 'dbgate-report', helpValue: '<dir>'}),
    'full-sql': Flags.boolean({summary: 'Show statements as recorded, literals included, instead of normalized.', default: false}),
    key: Flags.string({summary: 'Trust this published key file instead of the bucket\'s keys/ (repeatable).', multiple: true, helpValue: '<key.json>'}),
    signer: signerFlag,
  }

  async run(): Promise<{files: {html: string; json: string; md: string}; summary: Report['summary']; gaps: Report['gaps']}> {
    const {flags} = await this.parse(ReportCommand)
    const now = new Date()
    const since = flags.since ?? parseWhen('30d', now)
    const until = flags.until ?? now
    const {bucket} = await resolveBucket(flags, this)
    const keys = flags.key ? await readKeyFiles(flags.key) : undefined
    const trust = await resolveSignerTrust(flags, this)
    const frameworks = (flags.framework ?? [...FRAMEWORKS]) as Framework[]
    const progress = process.stderr.isTTY && !this.jsonEnabled()
    const {report, files} = await produceReport({
      bucket,
      since,
      until,
      target: flags.target,
      frameworks: [...new Set(frameworks)],
      outDir: resolve(flags.out),
      fullSql: flags['full-sql'],
      keys,
      trust,
      onKeys: trust ? (ring) => unmatchedSigners(trust, ring).forEach((name) => this.logToStderr(`warning: trusted signer ${name} matches no published key`)) : undefined,
      generator: `dbgate ${dbgateVersion()}`,
      now,
      onSession: progress ? (done, total) => process.stderr.write(`\rreading sessions ${done}/${total}`) : undefined,
    })
    // The progress line has done its job: cleared, so the summary below starts on a clean screen.
    if (progress && report.summary.sessions) process.stderr.write('\r\x1b[2K')
    const s = report.summary
    this.log(`Report for ${report.period.since.slice(0, 10)} to ${report.period.until.slice(0, 10)} from ${report.sources.bucket}:`)
    const n = (count: number, one: string, many = `${one}s`) => `${count.toLocaleString('en-US')} ${count === 1 ? one : many}`
    this.log(`  ${n(s.sessions, 'session')}, ${n(s.identities, 'identity', 'identities')}, ${n(s.statements, 'statement')}, ${s.denied.toLocaleString('en-US')} denied, ${n(s.approved, 'approval')} granted, ${n(s.maskedValues, 'value')} masked`)
    const verified = report.integrity.filter((i) => i.result === 'verified').length
    this.log(`  ${verified} of ${report.integrity.length} logs verified${s.logsFailingVerification ? chalk.red(`, ${s.logsFailingVerification} failing`) : ''}${s.unreadableObjects ? chalk.red(`, ${s.unreadableObjects} unreadable session object${s.unreadableObjects === 1 ? '' : 's'}`) : ''}`)
    for (const g of report.gaps) {
      // A gap names what the bucket holds (a key's name, a recorded identity): whoever wrote it chose it.
      this.log(chalk.yellow(`  gap: ${visible(g.message)}`))
      // Keys are whatever their writer chose: escaped before they reach the terminal.
      for (const o of g.objects ?? []) this.log(chalk.yellow(`    ${visible(o.key)}: ${visible(o.problem)}`))
    }
    this.log(`Wrote ${files.html}`)
    this.log(`      ${files.json}`)
    this.log(`      ${files.md}`)
    return {files, summary: s, gaps: report.gaps}
  }
}
