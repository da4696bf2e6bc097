import {EventEmitter} from 'node:events'
import {stripVTControlCharacters} from 'node:util'
import {render} from 'ink'
import type {ReactElement} from 'react'

/**
 * A terminal of a known size for an Ink app: what a reviewer sees of a frame is its last `rows`
 * lines, since Ink writes a frame taller than the terminal whole and the terminal scrolls its top
 * away (and clears the scrollback at the next frame). ink-testing-library's stdout has no rows, so
 * what it shows is every frame whole.
 */
class Screen extends EventEmitter {
  readonly isTTY = true
  readonly frames: string[] = []
  constructor(
    public columns: number,
    public rows: number,
  ) {
    super()
  }

  write = (frame: string): boolean => {
    this.frames.push(frame)
    return true
  }

  resize(columns: number, rows: number): void {
    this.columns = columns
    this.rows = rows
    this.emit('resize')
  }
}

class Keys extends EventEmitter {
  readonly isTTY = true
  private data: string | null = null
  write(data: string): void {
    this.data = data
    this.emit('readable')
    this.emit('data', data)
  }
  read = (): string | null => {
    const d = this.data
    this.data = null
    return d
  }
  setEncoding(): void {}
  setRawMode(): void {}
  resume(): void {}
  pause(): void {}
  ref(): void {}
  unref(): void {}
}

export interface Terminal {
  /** The whole last frame, without colours. */
  frame(): string
  /** The lines of the last frame a terminal of this size shows. */
  screen(): string[]
  /** Every line that has been on the screen since `since` frames were written (default: since the start). */
  seen(since?: number): string[]
  frameCount(): number
  keys(keys: string): void
  resize(columns: number, rows: number): void
  unmount(): void
}

export function renderIn(tree: ReactElement, columns: number, rows: number): Terminal {
  const out = new Screen(columns, rows)
  const keys = new Keys()
  const ink = render(tree, {stdout: out as unknown as NodeJS.WriteStream, stdin: keys as unknown as NodeJS.ReadStream, debug: true, exitOnCtrlC: false, patchConsole: false})
  const lines = (f: string) => stripVTControlCharacters(f).replace(/\n$/, '').split('\n')
  const shown = (f: string) => lines(f).slice(-out.rows)
  return {
    frame: () => stripVTControlCharacters(out.frames.at(-1) ?? ''),
    screen: () => shown(out.frames.at(-1) ?? ''),
    seen: (since = 0) => out.frames.slice(since).flatMap(shown),
    frameCount: () => out.frames.length,
    keys: (k) => keys.write(k),
    resize: (c, r) => out.resize(c, r),
    unmount: () => ink.unmount(),
  }
}
