import {Args, Flags} from '@oclif/core'
import chalk from 'chalk'
import {listFilters, resolveBucket} from '../../audit/cli.js'
import {bucketFlags, filterFlags} from '../../cli/flags.js'
import {highlight, SessionReader, type SearchMatch} from '../../audit/read.js'
import {DbgateCommand} from '../../cli/base-command.js'

export default class SessionsSearch extends DbgateCommand {
  static override summary = 'Find statements across recorded sessions.'
  static override description = 'Matches statement text case-insensitively (or as a regular expression with --regex) and prints each hit with its session, time, user and decision.'
  static override examples = ['$ dbgate sessions search "drop table"', '$ dbgate sessions search --table users --class delete --since 30d', '$ dbgate sessions search "email" --user alice --json']
  static override enableJsonFlag = true
  static override args = {text: Args.string({description: 'Text to find in statements; omit to match every statement the filters select.'})}
  static override flags = {
    ...bucketFlags,
    ...filterFlags,
    table: Flags.string({summary: 'Only statements touching this table (schema.table or table).', helpValue: '<table>'}),
    class: Flags.string({summary: 'Only statements of this class (select, insert, update, delete, ddl, …).', helpValue: '<class>'}),
    decision: Flags.string({summary: 'Only statements with this decision (allow, deny, approved, …).', helpValue: '<decision>'}),
    regex: Flags.boolean({summary: 'Treat the text as a regular expression.', default: false}),
    limit: Flags.integer({char: 'n', summary: 'Stop after this many matches.', default: 200, min: 1}),
  }

  async run(): Promise<SearchMatch[]> {
    const {args, flags} = await this.parse(SessionsSearch)
    const {bucket} = await resolveBucket(flags, this)
    const matches = await new SessionReader(bucket).search({
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
      const sql = m.sql.replace(/\s+/g, ' ')
      if (tty) {
        // Spans index the original text; collapsing whitespace first would shift them.
        const shown = highlight(m.sql, m.spans, (s) => chalk.inverse(s)).replace(/\s+/g, ' ')
        this.log(`${chalk.dim(`${m.sessionId}#${m.seq}`)} ${m.ts} ${m.user ?? '?'} ${m.target} ${m.decision === 'allow' ? m.decision : chalk.red(m.decision)}\n    ${shown}`)
      } else {
        this.log([m.sessionId, m.seq, m.ts, m.user ?? '', m.target, m.decision, m.class ?? '', sql].join('\t'))
      }
    }
    if (matches.length === 0) this.logToStderr('No statements match.')
    return matches
  }
}
