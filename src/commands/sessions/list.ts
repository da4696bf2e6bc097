import {Flags} from '@oclif/core'
import {renderTable, type Column} from '../../cli/table.js'
import {listFilters, relativeTime, resolveBucket, unreadableReport} from '../../audit/cli.js'
import {bucketFlags, filterFlags} from '../../cli/flags.js'
import type {Listing, SessionSummary} from '../../audit/index-cache.js'
import {SessionReader} from '../../audit/read.js'
import {DbgateCommand} from '../../cli/base-command.js'
import {agentLabel} from '../../identity/types.js'
import {EXIT_FAILURE} from '../../cli/exit-codes.js'

export default class SessionsList extends DbgateCommand {
  static override summary = 'List recorded sessions, newest first.'
  static override description = `Reads the bucket through a local cache, so only sessions not seen before are downloaded.

An object under sessions/ that cannot be read as a session log (not gzip, cut short, empty, too large, no dbgate event in it, a key that does not parse) does not stop the listing: every readable session is listed, each unreadable object is named on stderr (in "unreadable" with --json), and the command exits 1.`
  static override examples = ['$ dbgate sessions list --since 7d', '$ dbgate sessions list --agent', '$ dbgate sessions list --user alice --target prod --denied', '$ dbgate sessions list --since 2026-01-01 --until 2026-02-01 --json']
  static override enableJsonFlag = true
  static override flags = {
    ...bucketFlags,
    ...filterFlags,
    limit: Flags.integer({char: 'n', summary: 'Show at most this many sessions.', default: 50, min: 1}),
  }

  async run(): Promise<Listing & {notShown?: number}> {
    const {flags} = await this.parse(SessionsList)
    const {bucket} = await resolveBucket(flags, this)
    const listing = await new SessionReader(bucket).listing(listFilters(flags))
    const sessions = listing.sessions.slice(0, flags.limit)
    const tty = Boolean(process.stdout.isTTY)
    const columns: Column<SessionSummary>[] = [
      {header: 'SESSION', value: (s) => s.sessionId},
      {header: 'STARTED', value: (s) => (tty ? relativeTime(s.startedAt) : (s.startedAt ?? ''))},
      {header: 'USER', value: (s) => (s.agent ? `${s.user ?? '?'} via ${agentLabel(s.agent)}` : (s.user ?? '?'))},
      {header: 'TARGET', value: (s) => s.target},
      {header: 'STATEMENTS', value: (s) => String(s.totals.statements)},
      // Calls an agent's MCP tools refused themselves never reached the pipeline: counted apart from its denials.
      {header: 'DENIED', value: (s) => `${s.totals.denied}${s.toolRefusals ? ` (+${s.toolRefusals} by MCP tools)` : ''}`},
      {header: 'ERRORS', value: (s) => `${s.totals.errors}${s.totals.syntaxErrors ? ` (${s.totals.syntaxErrors} syntax)` : ''}`},
      // A refusal that counts others past the rate says how many: one row stands for all of them.
      {header: 'STATUS', value: (s) => (s.refused ? `refused (${s.refused.reason}${s.refused.alsoRefused ? `, and ${s.refused.alsoRefused} more` : ''})` : s.status)},
    ]
    if (sessions.length === 0) this.logToStderr('No sessions match.')
    else this.log(renderTable(sessions, columns, {tty}))
    // Newest first: fifty short sessions opened by one client would otherwise push every older one out in silence.
    const more = listing.sessions.length - sessions.length
    if (more > 0) this.logToStderr(`${more} older session${more === 1 ? '' : 's'} match${more === 1 ? 'es' : ''} too and ${more === 1 ? 'is' : 'are'} not shown (--limit ${flags.limit}): raise --limit, or narrow the list with --since/--until, --user, --target or --denied.`)
    for (const line of unreadableReport(listing.unreadable)) this.logToStderr(line)
    if (listing.unreadable.length) process.exitCode = EXIT_FAILURE
    return {sessions, unreadable: listing.unreadable, ...(more > 0 ? {notShown: more} : {})}
  }
}
