import {Args, Flags} from '@oclif/core'
import chalk from 'chalk'
import {listFilters, resolveBucket, unreadableReport} from '../../audit/cli.js'
import type {UnreadableObject} from '../../audit/index-cache.js'
import {EXIT_FAILURE} from '../../cli/exit-codes.js'
import {bucketFlags, filterFlags, oneOfFlag, whenFlag} from '../../cli/flags.js'
import {DECISIONS} from '../../audit/events.js'
import {STATEMENT_CLASSES} from '../../policy/types.js'
import {highlight, SessionReader, type SearchMatch} from '../../audit/read.js'
import {serverAnswer} from '../../audit/render.js'
import {DbgateCommand} from '../../cli/base-command.js'
import {visible} from '../../util/visible.js'

/** A statement on one line: runs of line breaks and blanks become one space, anything else unseen is escaped. */
const oneLine = (s: string): string => visible(s.replace(/[ \t\r\n]+/g, ' '))

/** `--class select` is what people try first: say which class a statement kind belongs to. */
function commandHint(value: string): string | undefined {
  const kind = {select: 'read', insert: 'write', update: 'write', delete: 'write', merge: 'write', copy: 'read or write', create: 'ddl', alter: 'ddl', drop: 'ddl', truncate: 'ddl', grant: 'privilege', revoke: 'privilege'}[value]
  return kind ? `${value} is a kind of statement, of class ${kind}: use --class ${kind.split(' ')[0]} and put "${value}" in the search text to narrow it down` : undefined
}

export default class SessionsSearch extends DbgateCommand {
  static override summary = 'Find statements across recorded sessions.'
  static override description = 'Matches statement text case-insensitively (or as a regular expression with --regex) and prints each hit with its session, time, user and decision. Objects under sessions/ that cannot be read as session logs are named on stderr (in "unreadable" with --json) after the matches, and the command exits 1.'
  static override examples = ['$ dbgate sessions search "drop table"', '$ dbgate sessions search delete --table users --class write --since 30d', '$ dbgate sessions search "email" --user alice --json']
  static override enableJsonFlag = true
  static override args = {text: Args.string({description: 'Text to find in statements; omit to match every statement the filters select.'})}
  static override flags = {
    ...bucketFlags,
    ...filterFlags,
    // Statements by when they ran, not by when their session started (`SessionReader.searchAll`).
    since: whenFlag('Only statements run since: a duration before now (7d, 12h, 1h30m, 1y), a UTC day (2026-01-31) or a date and time with its zone (2026-01-31T08:00:00Z); sessions started earlier included.'),
    until: whenFlag('Only statements run until: a duration before now or an ISO date (a bare date means the end of that day).', {endOfDay: true}),
    table: Flags.string({summary: 'Only statements touching this table (schema.table or table).', helpValue: '<table>'}),
    class: oneOfFlag('Only statements of this class, as policy classifies them.', STATEMENT_CLASSES, {helpValue: '<class>', hint: commandHint}),
    decision: oneOfFlag('Only statements with this decision.', DECISIONS, {helpValue: '<decision>'}),
    regex: Flags.boolean({summary: 'Treat the text as a regular expression.', default: false}),
    limit: Flags.integer({char: 'n', summary: 'Stop after this many matches.', default: 200, min: 1}),
  }

  async run(): Promise<{matches: SearchMatch[]; unreadable: UnreadableObject[]; truncated?: true}> {
    const {args, flags} = await this.parse(SessionsSearch)
    const {bucket} = await resolveBucket(flags, this)
    const {matches, unreadable, truncated} = await new SessionReader(bucket).searchAll({
      ...listFilters(flags),
      text: args.text,
      regex: flags.regex,
      table: flags.table,
      class: flags.class,
      decision: flags.decision,
      limit: flags.limit,
    })
    const tty = Boolean(process.stdout.isTTY)
    for (const m of matches) {
      // Recorded text is the client's: each piece is made `visible` before it reaches the terminal or a pipe.
      const sql = oneLine(m.sql)
      // An agent's statement says so, as `sessions list` does: the person it acted for did not type it.
      const who = m.agent ? `${m.user ?? '?'} via ${m.agent}` : (m.user ?? (tty ? '?' : ''))
      const [session, ts, user, target, decision, cls] = [m.sessionId, m.ts, who, m.target, m.decision, m.class ?? ''].map((s) => visible(s))
      if (tty) {
        // Spans index the original text; collapsing whitespace first would shift them.
        const shown = highlight(m.sql, m.spans, (s) => chalk.inverse(s), oneLine)
        const answer = serverAnswer(m)
        const runs = (m.runs ?? []).map((text) => `\n    ${chalk.dim('runs:')} ${highlight(text, [], (x) => x, oneLine)}`).join('')
        this.log(`${chalk.dim(`${session}#${m.seq}`)} ${ts} ${user} ${target} ${m.decision === 'allow' ? decision : chalk.red(decision)}${answer ? ` ${chalk.yellow(visible(answer))}` : ''}\n    ${shown}${runs}`)
      } else {
        this.log([session, m.seq, ts, user, target, decision, cls, sql].join('\t'))
      }
    }
    if (matches.length === 0) this.logToStderr('No statements match.')
    // Newest sessions first: a match in an older one may be past the limit, so the limit is never silent.
    if (truncated) this.logToStderr(`More statements match than the ${flags.limit} shown (--limit ${flags.limit}); sessions are searched newest first, so older matches are not shown: raise --limit, or narrow the search with --since/--until, --user, --target, --table or --decision.`)
    // Not searched, so a match may hide in them: said after the matches, and the exit code says it too.
    for (const line of unreadableReport(unreadable)) this.logToStderr(line)
    if (unreadable.length) process.exitCode = EXIT_FAILURE
    return {matches, unreadable, ...(truncated ? {truncated} : {})}
  }
}
