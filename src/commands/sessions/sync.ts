import {resolveBucket} from '../../audit/cli.js'
import {formatSize} from '../../util/size.js'
import {visible} from '../../util/visible.js'
import {bucketFlags, spoolFlag} from '../../cli/flags.js'
import {shipPending, type ShipReport} from '../../audit/shipper.js'
import {defaultKeyDir, loadOrCreateInstallationKey} from '../../audit/signing.js'
import {defaultSpoolDir} from '../../audit/spool.js'
import {DbgateCommand} from '../../cli/base-command.js'
import {EXIT_FAILURE} from '../../cli/exit-codes.js'

export default class SessionsSync extends DbgateCommand {
  static override summary = 'Ship recordings waiting in the local spool to the bucket now.'
  static override description = 'Ships ended sessions, snapshots of live ones, and sessions whose tunnel died (sealed as interrupted first). What cannot be shipped stays in the spool for the next run; exits 1 if anything failed.'
  static override examples = ['$ dbgate sessions sync', '$ dbgate sessions sync --json']
  static override enableJsonFlag = true
  static override flags = {...bucketFlags, 'spool-dir': spoolFlag}

  async run(): Promise<ShipReport> {
    const {flags} = await this.parse(SessionsSync)
    const {bucket} = await resolveBucket(flags, this)
    const signer = await loadOrCreateInstallationKey(defaultKeyDir())
    const report = await shipPending({bucket, signer, spoolDir: flags['spool-dir'] ?? defaultSpoolDir()})
    for (const s of report.shipped) this.log(`shipped ${s.sessionId} (${s.state}, ${formatSize(s.bytes, 'approximate')}) → ${bucket.url}${s.key}`)
    // The message carries the bucket's own answer (an S3-compatible endpoint's error code), which the endpoint chose: not ours to print raw.
    for (const f of report.failed) this.logToStderr(`failed  ${f.sessionId}: ${f.error?.code} ${visible(f.error?.message ?? '')} (kept in the spool)`)
    if (report.shipped.length === 0 && report.failed.length === 0) this.log('Nothing to ship.')
    if (report.failed.length) process.exitCode = EXIT_FAILURE
    return report
  }
}
