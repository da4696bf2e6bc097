import {renderTable, type Column} from '../../cli/table.js'
import {relativeTime} from '../../audit/cli.js'
import {formatSize} from '../../util/size.js'
import {spoolFlag} from '../../cli/flags.js'
import {spoolStatus, type SpoolEntry, type SpoolStatus} from '../../audit/spool-scan.js'
import {defaultSpoolDir} from '../../audit/spool.js'
import {DbgateCommand} from '../../cli/base-command.js'

export default class SessionsStatus extends DbgateCommand {
  static override summary = 'Show what is waiting in the local spool to be shipped.'
  static override examples = ['$ dbgate sessions status', '$ dbgate sessions status --json']
  static override enableJsonFlag = true
  static override flags = {'spool-dir': spoolFlag}

  async run(): Promise<SpoolStatus> {
    const {flags} = await this.parse(SessionsStatus)
    const status = await spoolStatus(flags['spool-dir'] ?? defaultSpoolDir())
    const tty = Boolean(process.stdout.isTTY)
    if (status.count === 0) {
      this.log(`Nothing waiting in ${status.dir}.`)
      return status
    }
    this.log(`${status.count} session${status.count === 1 ? '' : 's'} in ${status.dir}: ${formatSize(status.bytes, 'approximate')}, ${formatSize(status.unshippedBytes, 'approximate')} not yet shipped; oldest started ${tty ? relativeTime(status.oldest) : status.oldest}.`)
    const columns: Column<SpoolEntry>[] = [
      {header: 'SESSION', value: (s) => s.sessionId},
      {header: 'STATE', value: (s) => s.state},
      {header: 'TARGET', value: (s) => s.target ?? '?'},
      {header: 'STARTED', value: (s) => (tty ? relativeTime(s.startedAt) : (s.startedAt ?? ''))},
      {header: 'UNSHIPPED', value: (s) => (tty ? formatSize(s.unshippedBytes, 'approximate') : String(s.unshippedBytes))},
    ]
    this.log(renderTable(status.sessions, columns, {tty}))
    return status
  }
}
