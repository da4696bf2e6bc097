import {Args, Flags} from '@oclif/core'
import {resolveBucket, signedThroughOf} from '../../audit/cli.js'
import {bucketFlags} from '../../cli/flags.js'
import {SessionReader} from '../../audit/read.js'
import {DEFAULT_MAX_DELAY_MS, replay} from '../../audit/render.js'
import {colorEnabled} from '../../cli/color.js'
import chalk from 'chalk'
import {UsageError} from '../../cli/errors.js'
import {DbgateCommand} from '../../cli/base-command.js'

/** Space pauses and resumes, `s` (or →) skips the current wait, `q` (or Ctrl-C) stops. TTY only. */
class Keys {
  private paused = false
  private wake?: () => void
  quit = false

  constructor(private readonly stdin: NodeJS.ReadStream) {
    stdin.setRawMode(true)
    stdin.resume()
    stdin.on('data', this.onData)
  }

  private onData = (buf: Buffer) => {
    const k = buf.toString()
    if (k === 'q' || k === '\u0003') this.quit = true
    else if (k === ' ') this.paused = !this.paused
    else if (k !== 's' && k !== '\u001b[C') return
    if (!this.paused || this.quit) this.wake?.()
  }

  async wait(ms: number): Promise<void> {
    if (ms > 0 && !this.quit) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms)
        this.wake = () => {
          clearTimeout(t)
          resolve()
        }
      })
    }
    while (this.paused && !this.quit) await new Promise<void>((resolve) => (this.wake = resolve))
  }

  dispose(): void {
    this.stdin.off('data', this.onData)
    this.stdin.setRawMode(false)
    this.stdin.pause()
  }
}

export default class SessionsReplay extends DbgateCommand {
  static override summary = 'Replay a session with its original timing.'
  static override description = 'Prints each statement, its decision and its masked result preview at the pace it happened. On a terminal: space pauses, s skips the wait, q stops.'
  static override examples = ['$ dbgate sessions replay 3f2a9c', '$ dbgate sessions replay 3f2a9c --speed 4 --max-delay 2000', '$ dbgate sessions replay 3f2a9c --no-wait']
  static override args = {session: Args.string({description: 'Session id, or a unique prefix of one.', required: true})}
  static override flags = {
    ...bucketFlags,
    speed: Flags.string({summary: 'Playback speed: 2 is twice as fast.', default: '1', helpValue: '<factor>'}),
    'no-wait': Flags.boolean({summary: 'Print everything at once.', default: false}),
    'max-delay': Flags.integer({summary: `Longest pause between two events, in milliseconds (default ${DEFAULT_MAX_DELAY_MS}); a longer one is shortened, and the replay says so.`, min: 0, helpValue: '<ms>'}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(SessionsReplay)
    const speed = Number(flags.speed)
    if (!(speed > 0)) throw new UsageError(`--speed must be a positive number, got ${flags.speed}`)
    const {bucket} = await resolveBucket(flags, this)
    const loaded = await new SessionReader(bucket).load(args.session)
    const {events} = loaded
    const signedThroughSeq = await signedThroughOf(bucket, loaded, flags, this)
    const color = colorEnabled(process.stdout)
    const keys = process.stdin.isTTY && process.stdout.isTTY && !flags['no-wait'] ? new Keys(process.stdin) : undefined
    const maxDelayMs = flags['max-delay'] ?? DEFAULT_MAX_DELAY_MS
    if (keys) {
      const tell = `Replaying at ${speed === 1 ? 'the original pace' : `${speed}× the original pace`}; pauses over ${maxDelayMs / 1000}s are shortened. Keys: space pause/resume · s skip the wait · q stop`
      this.log(color ? chalk.dim(tell) : tell)
    }
    try {
      for (const step of replay(events, {speed, noWait: flags['no-wait'], maxDelayMs, color, signedThroughSeq})) {
        if (keys) await keys.wait(step.delayMs)
        else if (step.delayMs > 0) await new Promise((r) => setTimeout(r, step.delayMs))
        if (keys?.quit) break
        for (const line of step.lines) this.log(line)
      }
    } finally {
      keys?.dispose()
    }
  }
}
