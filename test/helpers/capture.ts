import {vi} from 'vitest'

export interface Captured<T> {
  result: Awaited<T>
  stdout: string
  stderr: string
  exitCode: number
}

/**
 * Runs a command in-process: what it printed on each stream (console and direct writes), what it
 * returned, and the exit code it set. The streams and `process.exitCode` are restored afterwards.
 */
export async function captureCommand<T>(fn: () => Promise<T>): Promise<Captured<T>> {
  let stdout = ''
  let stderr = ''
  const spies = [
    vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void (stdout += args.join(' ') + '\n')),
    vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void (stderr += args.join(' ') + '\n')),
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((stdout += chunk.toString()), true)),
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((stderr += chunk.toString()), true)),
  ]
  const before = process.exitCode
  try {
    const result = await fn()
    return {result, stdout, stderr, exitCode: Number(process.exitCode ?? 0)}
  } finally {
    for (const spy of spies) spy.mockRestore()
    process.exitCode = before
  }
}
