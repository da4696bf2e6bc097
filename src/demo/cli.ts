/**
 * Runs the real `dbgate` executable as one of the demo's people, the way they would from their
 * own terminal. Every process started here is tracked, so the tour can always stop them.
 */
import {spawn, type ChildProcessWithoutNullStreams} from 'node:child_process'
import {fileURLToPath} from 'node:url'

/** bin/run.js of this installation; the same relative path from src/demo and dist/demo. */
export const DBGATE_BIN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface CliRunOptions {
  /** Sees stderr as it arrives (the device-code prompt is read from there). */
  onStderr?: (text: string) => void
  timeoutMs?: number
}

/** A dbgate process left running (a tunnel), with its output so far. */
export interface LiveCli {
  child: ChildProcessWithoutNullStreams
  stdout(): string
  stderr(): string
  exited: Promise<CliResult>
}

/**
 * The person's environment on top of ours, minus anything of ours that would make the child act
 * as someone else or somewhere else (a DBGATE_TOKEN, a PGHOST, forced colours in parsed output).
 */
function childEnv(person: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!/^(DBGATE_|PG|XDG_|FORCE_COLOR$)/.test(k)) env[k] = v
  return {...env, NO_COLOR: '1', ...person}
}

export class CliRunner {
  private readonly live = new Set<ChildProcessWithoutNullStreams>()

  start(args: string[], env: Record<string, string>, onStderr?: (text: string) => void): LiveCli {
    const child = spawn(process.execPath, [DBGATE_BIN, ...args], {env: childEnv(env), stdio: ['pipe', 'pipe', 'pipe']})
    this.live.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
      onStderr?.(stderr)
    })
    child.stdin.end()
    const exited = new Promise<CliResult>((resolve, reject) => {
      child.once('error', (e) => {
        this.live.delete(child)
        reject(e)
      })
      child.once('close', (code, signal) => {
        this.live.delete(child)
        resolve({code, signal, stdout, stderr})
      })
    })
    return {child, stdout: () => stdout, stderr: () => stderr, exited}
  }

  /** Runs to completion; a process that outlives `timeoutMs` (default 60 s) is killed and reported. */
  async run(args: string[], env: Record<string, string>, opts: CliRunOptions = {}): Promise<CliResult> {
    const p = this.start(args, env, opts.onStderr)
    const timeoutMs = opts.timeoutMs ?? 60_000
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        p.child.kill('SIGKILL')
        reject(new Error(`\`dbgate ${args.join(' ')}\` did not finish within ${timeoutMs / 1000} s`))
      }, timeoutMs)
    })
    try {
      return await Promise.race([p.exited, timedOut])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Interrupts like Ctrl-C, so the process cleans up; kills it if it has not exited in time. */
  async interrupt(p: LiveCli, graceMs = 15_000): Promise<CliResult> {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGINT')
    const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs)
    try {
      return await p.exited
    } finally {
      clearTimeout(timer)
    }
  }

  /** Stops whatever is still running, each by its own pid. */
  async stopAll(): Promise<void> {
    await Promise.all(
      [...this.live].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve()
            const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
            child.once('close', () => {
              clearTimeout(timer)
              resolve()
            })
            child.kill('SIGTERM')
          }),
      ),
    )
  }
}
