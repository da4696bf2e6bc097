import {createWriteStream} from 'node:fs'
import type {Writable} from 'node:stream'
import {finished} from 'node:stream/promises'
import {Args, Flags} from '@oclif/core'
import {listFilters, resolveBucket, unreadableReport} from '../../audit/cli.js'
import {EXIT_FAILURE} from '../../cli/exit-codes.js'
import {bucketFlags, filterFlags} from '../../cli/flags.js'
import {exportSession, loadEach, SessionReader} from '../../audit/read.js'
import {DbgateCommand} from '../../cli/base-command.js'

export default class SessionsExport extends DbgateCommand {
  static override summary = 'Export sessions as evidence: signed JSON lines or a CSV of statements.'
  static override description = 'jsonl keeps every line byte for byte, so the export itself can be checked with `dbgate sessions verify --file`. csv has one row per statement.'
  static override examples = ['$ dbgate sessions export --since 90d --target prod -o q1-prod.jsonl', '$ dbgate sessions export 3f2a9c --format csv > session.csv']
  static override strict = false
  static override args = {sessions: Args.string({description: 'Session ids (or unique prefixes); default: every session the filters select.'})}
  static override flags = {
    ...bucketFlags,
    ...filterFlags,
    format: Flags.string({char: 'f', summary: 'Output format.', options: ['jsonl', 'csv'], default: 'jsonl'}),
    output: Flags.string({char: 'o', summary: 'Write to this file instead of standard output.', helpValue: '<file>'}),
  }

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(SessionsExport)
    const {bucket} = await resolveBucket(flags, this)
    const reader = new SessionReader(bucket)
    const ids = argv as string[]
    const listing = ids.length ? {sessions: await loadEach(reader, ids), unreadable: []} : await reader.listing(listFilters(flags))
    const summaries = ids.length ? listing.sessions : [...listing.sessions].reverse()
    const file = flags.output ? createWriteStream(flags.output, {mode: 0o600}) : undefined
    const out: Writable = file ?? process.stdout
    let first = true
    for (const s of summaries) {
      for (const chunk of exportSession(await reader.loadSummary(s), flags.format as 'jsonl' | 'csv', first)) {
        if (!out.write(chunk)) await new Promise((r) => out.once('drain', r))
      }
      first = false
    }
    if (file) {
      file.end()
      await finished(file)
      this.logToStderr(`Exported ${summaries.length} session${summaries.length === 1 ? '' : 's'} to ${flags.output}.`)
    }
    for (const line of unreadableReport(listing.unreadable)) this.logToStderr(line)
    if (listing.unreadable.length) process.exitCode = EXIT_FAILURE
  }
}
