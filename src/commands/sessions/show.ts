import {Args} from '@oclif/core'
import {resolveBucket, signedThroughOf} from '../../audit/cli.js'
import {bucketFlags} from '../../cli/flags.js'
import type {AuditEvent} from '../../audit/events.js'
import {SessionReader} from '../../audit/read.js'
import {renderTimeline} from '../../audit/render.js'
import {colorEnabled} from '../../cli/color.js'
import {DbgateCommand} from '../../cli/base-command.js'

export default class SessionsShow extends DbgateCommand {
  static override summary = 'Show one session as a timeline of its statements and decisions.'
  static override examples = ['$ dbgate sessions show 3f2a9c', '$ dbgate sessions show 3f2a9c --json']
  static override enableJsonFlag = true
  static override args = {session: Args.string({description: 'Session id, or a unique prefix of one.', required: true})}
  static override flags = {...bucketFlags}

  async run(): Promise<{session: string; events: AuditEvent[]}> {
    const {args, flags} = await this.parse(SessionsShow)
    const {bucket} = await resolveBucket(flags, this)
    const loaded = await new SessionReader(bucket).load(args.session)
    const {summary, events} = loaded
    const signedThroughSeq = await signedThroughOf(bucket, loaded, flags, this)
    for (const line of renderTimeline(events, {color: colorEnabled(process.stdout), signedThroughSeq})) this.log(line)
    return {session: summary.sessionId, events}
  }
}
