import {Flags} from '@oclif/core'
import {renderTable, type Column} from '../../cli/table.js'
import {listFilters, relativeTime, resolveBucket} from '../../audit/cli.js'
import {bucketFlags, filterFlags} from '../../cli/flags.js'
import type {SessionSummary} from '../../audit/index-cache.js'
import {SessionReader} from '../../audit/read.js'
import {DbgateCommand} from '../../cli/base-command.js'
import {agentLabel} from '../../identity/types.js'

export default class SessionsList extends DbgateCommand {
  static override summary = 'List recorded sessions, newest first.'
  static override description = 'Reads the bucket through a local cache, so only sessions not seen before are downloaded.'
  static override examples = ['$ dbgate sessions list --since 7d', '$ dbgate sessions list --agent', '$ dbgate sessions list --user alice --target prod --denied', '$ dbgate sessions list --since 2026-01-01 --until 2026-02-01 --json']
  static override enableJsonFlag = true
  static override flags = {
    ...bucketFlags,
    ...filterFlags,
    limit: Flags.integer({char: 'n', summary: 'Show at most this many sessions.', default: 50, min: 1}),
  }

  async run(): Promise<SessionSummary[]> {
    const {flags} = await this.parse(SessionsList)
    const {bucket} = await resolveBucket(flags, this)
    const sessions = (await new SessionReader(bucket).list(listFilters(flags))).slice(0, flags.limit)
    const tty = Boolean(process.stdout.isTTY)
    const columns: Column<SessionSummary>[] = [
      {header: 'SESSION', value: (s) => s.sessionId},
      {header: 'STARTED', value: (s) => (tty ? relativeTime(s.startedAt) : (s.startedAt ?? ''))},
      {header: 'USER', value: (s) => (s.agent ? `${s.user ?? '?'} via ${agentLabel(s.agent)}` : (s.user ?? '?'))},
      {header: 'TARGET', value: (s) => s.target},
      {header: 'STATEMENTS', value: (s) => String(s.totals.statements)},
      {header: 'DENIED', value: (s) => String(s.totals.denied)},
      {header: 'ERRORS', value: (s) => `${s.totals.errors}${s.totals.syntaxErrors ? ` (${s.totals.syntaxErrors} syntax)` : ''}`},
      {header: 'STATUS', value: (s) => s.status},
    ]
    if (sessions.length === 0) this.logToStderr('No sessions match.')
    else this.log(renderTable(sessions, columns, {tty}))
    return sessions
  }
}
