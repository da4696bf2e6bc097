/**
 * Headless Chromium for tests that must see what a browser renders (the report's charts, print
 * layout, PDF): the system's Chromium (Debian package `chromium`), driven by playwright-core with
 * `executablePath`, so no browser is ever downloaded. Every call has playwright's timeouts.
 */
import {existsSync} from 'node:fs'
import {chromium, type Browser, type Page as PlaywrightPage} from 'playwright-core'

const CANDIDATES = ['/usr/bin/chromium', '/usr/lib/chromium/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']

export function findChromium(env: NodeJS.ProcessEnv = process.env): string {
  const path = env.DBGATE_TEST_CHROMIUM ?? CANDIDATES.find((p) => existsSync(p))
  if (!path) throw new Error('headless Chromium not found: install the Debian package `chromium` (apt-get install chromium; .ci/run does), or set DBGATE_TEST_CHROMIUM to its binary')
  return path
}

/** This machine has no network: without these, Chromium keeps dialling out and being refused. */
const QUIET = ['--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check', '--disable-background-networking', '--disable-extensions', '--disable-sync', '--disable-component-update', '--disable-quic', '--mute-audio']

export class Chromium {
  private constructor(private readonly browser: Browser) {}

  static async launch(): Promise<Chromium> {
    return new Chromium(await chromium.launch({executablePath: findChromium(), headless: true, chromiumSandbox: false, args: QUIET, timeout: 30_000}))
  }

  /** Opens `url` in a new page of `width` CSS pixels and waits for its load event. */
  async open(url: string, width = 1200, height = 900): Promise<Page> {
    const page = await this.browser.newPage({viewport: {width, height}, deviceScaleFactor: 1})
    const requests: string[] = []
    page.on('request', (r) => requests.push(r.url()))
    await page.goto(url, {waitUntil: 'load', timeout: 30_000})
    return new Page(page, requests)
  }

  async close(): Promise<void> {
    await this.browser.close()
  }
}

export class Page {
  constructor(
    private readonly page: PlaywrightPage,
    /** Every URL the page asked the network for, the page itself included. */
    readonly requests: string[],
  ) {}

  /** Evaluates `expression` in the page and returns its value (JSON-serialisable). */
  evaluate<T>(expression: string): Promise<T> {
    return this.page.evaluate(expression) as Promise<T>
  }

  async emulateMedia(media: 'screen' | 'print'): Promise<void> {
    await this.page.emulateMedia({media})
  }

  screenshot(): Promise<Buffer> {
    return this.page.screenshot({fullPage: true, type: 'png'})
  }

  pdf(): Promise<Buffer> {
    return this.page.pdf({printBackground: true, preferCSSPageSize: false})
  }
}
