/**
 * Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: commands
 * on fd 3, replies on fd 4, each message ended by a NUL byte), so a test can open a page, read what
 * the browser actually rendered, screenshot and print it, with no WebSocket library and no port.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {Readable, Writable} from 'node:stream'

const CANDIDATES = ['/usr/lib/chromium/chromium', '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']

export function findChromium(env: NodeJS.ProcessEnv = process.env): string {
  const path = env.DBGATE_TEST_CHROMIUM ?? CANDIDATES.find((p) => existsSync(p))
  if (!path) throw new Error('headless Chromium not found: install the Debian package `chromium` (apt-get install chromium; .ci/run does), or set DBGATE_TEST_CHROMIUM to its binary')
  return path
}

interface Pending {
  resolve: (v: Record<string, unknown>) => void
  reject: (e: Error) => void
  method: string
}

export class Chromium {
  private nextId = 1
  private pending = new Map<number, Pending>()
  private listeners: ((msg: {method: string; params: Record<string, unknown>; sessionId?: string}) => void)[] = []
  private buffer = ''
  private stderr = ''

  private constructor(
    private readonly child: ChildProcess,
    private readonly profile: string,
  ) {
    const out = child.stdio[4] as Readable
    out.setEncoding('utf8')
    out.on('data', (chunk: string) => {
      this.buffer += chunk
      let end: number
      while ((end = this.buffer.indexOf('\0')) >= 0) {
        const msg = JSON.parse(this.buffer.slice(0, end)) as {id?: number; result?: Record<string, unknown>; error?: {message: string}; method?: string; params?: Record<string, unknown>; sessionId?: string}
        this.buffer = this.buffer.slice(end + 1)
        if (msg.id !== undefined) {
          const p = this.pending.get(msg.id)
          this.pending.delete(msg.id)
          if (msg.error) p?.reject(new Error(`${p.method}: ${msg.error.message}`))
          else p?.resolve(msg.result ?? {})
        } else if (msg.method) {
          for (const l of this.listeners) l({method: msg.method, params: msg.params ?? {}, sessionId: msg.sessionId})
        }
      }
    })
    child.stderr?.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)))
    child.on('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error(`chromium exited before answering ${p.method}: ${this.stderr}`))
      this.pending.clear()
    })
  }

  static async launch(): Promise<Chromium> {
    const profile = await mkdtemp(join(tmpdir(), 'dbgate-chromium-'))
    const child = spawn(
      findChromium(),
      ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check', '--disable-background-networking', '--disable-extensions', '--disable-sync', '--disable-component-update', '--mute-audio', `--user-data-dir=${profile}`, '--remote-debugging-pipe', 'about:blank'],
      {stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe']},
    )
    return new Chromium(child, profile)
  }

  send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = this.nextId++
    const input = this.child.stdio[3] as Writable
    return new Promise((resolve, reject) => {
      this.pending.set(id, {resolve, reject, method})
      input.write(JSON.stringify({id, method, params, ...(sessionId ? {sessionId} : {})}) + '\0')
    })
  }

  /** Resolves with the first event named `method` (optionally in `sessionId`) that `pred` accepts. */
  waitFor(method: string, sessionId?: string, pred: (params: Record<string, unknown>) => boolean = () => true): Promise<Record<string, unknown>> {
    return new Promise((resolve) => {
      const l = (msg: {method: string; params: Record<string, unknown>; sessionId?: string}) => {
        if (msg.method === method && (!sessionId || msg.sessionId === sessionId) && pred(msg.params)) {
          this.listeners = this.listeners.filter((x) => x !== l)
          resolve(msg.params)
        }
      }
      this.listeners.push(l)
    })
  }

  on(l: (msg: {method: string; params: Record<string, unknown>; sessionId?: string}) => void): void {
    this.listeners.push(l)
  }

  /** Opens `url` in a new page of `width` CSS pixels and waits for its load event. */
  async open(url: string, width = 1200, height = 900): Promise<Page> {
    const {targetId} = (await this.send('Target.createTarget', {url: 'about:blank'})) as {targetId: string}
    const {sessionId} = (await this.send('Target.attachToTarget', {targetId, flatten: true})) as {sessionId: string}
    const page = new Page(this, sessionId)
    await this.send('Page.enable', {}, sessionId)
    await this.send('Network.enable', {}, sessionId)
    this.on((m) => {
      if (m.sessionId === sessionId && m.method === 'Network.requestWillBeSent') page.requests.push((m.params.request as {url: string}).url)
    })
    await this.send('Emulation.setDeviceMetricsOverride', {width, height, deviceScaleFactor: 1, mobile: false}, sessionId)
    const loaded = this.waitFor('Page.loadEventFired', sessionId)
    await this.send('Page.navigate', {url}, sessionId)
    await loaded
    return page
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r))
      await this.send('Browser.close').catch(() => this.child.kill('SIGKILL'))
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000).unref())])
      if (this.child.exitCode === null) this.child.kill('SIGKILL')
    }
    await rm(this.profile, {recursive: true, force: true})
  }
}

export class Page {
  /** Every URL the page asked the network for, the page itself included. */
  readonly requests: string[] = []

  constructor(
    private readonly browser: Chromium,
    readonly sessionId: string,
  ) {}

  /** Evaluates `expression` in the page and returns its value (JSON-serialisable). */
  async evaluate<T>(expression: string): Promise<T> {
    const r = (await this.browser.send('Runtime.evaluate', {expression, returnByValue: true}, this.sessionId)) as {result: {value: T}; exceptionDetails?: {text: string; exception?: {description?: string}}}
    if (r.exceptionDetails) throw new Error(`page script failed: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`)
    return r.result.value
  }

  async emulateMedia(media: 'screen' | 'print'): Promise<void> {
    await this.browser.send('Emulation.setEmulatedMedia', {media}, this.sessionId)
  }

  async screenshot(): Promise<Buffer> {
    // A page in a background tab never paints, and its screenshot never comes.
    await this.browser.send('Page.bringToFront', {}, this.sessionId)
    const r = (await this.browser.send('Page.captureScreenshot', {format: 'png', captureBeyondViewport: true}, this.sessionId)) as {data: string}
    return Buffer.from(r.data, 'base64')
  }

  async pdf(): Promise<Buffer> {
    await this.browser.send('Page.bringToFront', {}, this.sessionId)
    const r = (await this.browser.send('Page.printToPDF', {printBackground: true, preferCSSPageSize: false}, this.sessionId)) as {data: string}
    return Buffer.from(r.data, 'base64')
  }
}
