/**
 * Opens report.html in headless Chromium and reads back what the browser rendered: the charts are
 * laid out with the report's numbers, the tables hold the right rows, nothing is fetched from the
 * network, recorded text never becomes markup, and the page prints. A screenshot and the printed
 * PDF are kept with the report's three files in test-artifacts/report/ (or $DBGATE_TEST_ARTIFACTS)
 * for a person to look at; docs/sample-report/ is a copy of them.
 */
import {copyFile, mkdir, writeFile} from 'node:fs/promises'
import {dirname, join, resolve} from 'node:path'
import {pathToFileURL} from 'node:url'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {FileBucket} from '../../src/bucket/index.js'
import {FRAMEWORKS, type Report} from '../../src/report/model.js'
import {produceReport} from '../../src/report/produce.js'
import {removeTempDirs, tempDir} from '../audit/helpers.js'
import {Chromium, type Page} from '../helpers/chromium.js'
import {october, recordFixture} from './fixture.js'

const artifacts = resolve(process.env.DBGATE_TEST_ARTIFACTS ?? 'test-artifacts', 'report')
let browser: Chromium
let page: Page
let report: Report
let htmlPath: string

beforeAll(async () => {
  const bucket = new FileBucket(await tempDir('dbgate-report-bucket-'))
  await recordFixture(october(), bucket, tempDir)
  const out = await tempDir('dbgate-report-out-')
  ;({report} = await produceReport({
    bucket,
    cacheDir: await tempDir('dbgate-report-cache-'),
    since: new Date('2026-10-01T00:00:00Z'),
    until: new Date('2026-10-31T23:59:59.999Z'),
    frameworks: [...FRAMEWORKS],
    outDir: out,
    generator: 'dbgate test',
    now: new Date('2026-11-01T08:00:00Z'),
  }))
  htmlPath = join(out, 'report.html')
  browser = await Chromium.launch()
  page = await browser.open(pathToFileURL(htmlPath).href)
})

afterAll(async () => {
  await browser?.close()
  await removeTempDirs()
})

interface Mark {
  label: string
  value: number
  width: number
  height: number
}

/** The marks of one chart as laid out by the browser. */
const marks = (chart: string, selector = '.bar'): Promise<Mark[]> =>
  page.evaluate<Mark[]>(`[...document.querySelectorAll('#${chart} ${selector}')].map((e) => { const b = e.getBoundingClientRect(); return {label: e.dataset.label, value: Number(e.dataset.value), width: b.width, height: b.height} })`)

describe('report.html in a browser', () => {
  it('loads nothing but itself and runs no script', async () => {
    expect(page.requests).toEqual([pathToFileURL(htmlPath).href])
    expect(await page.evaluate<number>('document.scripts.length')).toBe(0)
  })

  it('shows the summary figures of report.json', async () => {
    const cards = await page.evaluate<Record<string, string>>(`Object.fromEntries([...document.querySelectorAll('[data-figure]')].map((c) => [c.dataset.figure, c.querySelector('.n').innerText]))`)
    const s = report.summary
    expect(cards).toEqual({
      identities: String(s.identities),
      sessions: String(s.sessions),
      statements: String(s.statements),
      denied: String(s.denied),
      approved: String(s.approved),
      approvalsDenied: String(s.approvalsDenied),
      maskedValues: String(s.maskedValues),
      destructiveAttempts: String(s.destructiveAttempts),
      privilegedAttempts: String(s.privilegedAttempts),
      logsFailingVerification: String(s.logsFailingVerification),
    })
  })

  it('draws activity per day with one visible bar per day, as tall as its count', async () => {
    const bars = await marks('chart-activity')
    expect(bars.map((b) => [b.label, b.value])).toEqual(report.daily.map((d) => [d.day, d.statements]))
    const [one] = bars.filter((b) => b.value === 2)
    const [four] = bars.filter((b) => b.value === 4)
    expect(one!.width).toBeGreaterThan(5)
    // Heights are proportional to the counts: the chart is a chart, not decoration.
    expect(four!.height / one!.height).toBeCloseTo(2, 1)
    expect(bars.filter((b) => b.value === 0).every((b) => b.height === 0)).toBe(true)
  })

  it('plots denials and approvals per day', async () => {
    const points = await page.evaluate<{series: string; label: string; value: number}[]>(`[...document.querySelectorAll('#chart-decisions .point')].map((e) => ({series: e.dataset.series, label: e.dataset.label, value: Number(e.dataset.value)}))`)
    const bySeries = (p: {series: string}) => (p.series === 'denied' ? 0 : 1)
    const nonZero = points.filter((p) => p.value > 0).sort((a, b) => bySeries(a) - bySeries(b)).map((p) => [p.series, p.label, p.value])
    expect(nonZero).toEqual([
      ...report.daily.filter((d) => d.denied > 0).map((d) => ['denied', d.day, d.denied]),
      ...report.daily.filter((d) => d.approved > 0).map((d) => ['approved', d.day, d.approved]),
    ])
    expect(await page.evaluate<string[]>(`[...document.querySelectorAll('#chart-decisions .legend')].map((e) => e.textContent)`)).toEqual([`denied (${report.summary.denied})`, `approved (${report.summary.approved})`])
  })

  it('ranks classes, identities and tables with bars in proportion', async () => {
    const classes = await marks('chart-classes')
    expect(classes.map((b) => [b.label, b.value])).toEqual(report.byClass.map((c) => [c.class, c.statements]))
    expect(classes[0]!.width).toBeGreaterThan(classes.at(-1)!.width)
    const identities = await marks('chart-identities')
    expect(identities.map((b) => b.value)).toEqual(report.topIdentities.map((i) => i.statements))
    const denied = await marks('chart-identities', '.part')
    expect(denied.map((b) => b.value)).toEqual(report.topIdentities.filter((i) => i.denied > 0).map((i) => i.denied))
    expect((await marks('chart-tables')).map((b) => [b.label, b.value])).toEqual(report.topTables.map((t) => [t.table, t.statements]))
  })

  it('renders the attempts, approvals, identities, attention and integrity tables with their rows', async () => {
    const rows = (id: string) => page.evaluate<string[][]>(`[...document.querySelectorAll('#${id} tbody tr')].map((tr) => [...tr.cells].map((td) => td.innerText.trim()))`)
    const attempts = await rows('attempts')
    expect(attempts.map((r) => [r[3], r[5]])).toEqual(report.attempts.map((a) => [`${a.what} (${a.risk})`, a.decision]))
    const approvals = await rows('approvals')
    expect(approvals.map((r) => [r[1], r[4], r[5], r[6]])).toEqual([
      ['ada@example.com', 'approved (1 forged decision refused)', 'bob@example.com', 'ticket OPS-42, reviewed migration'],
      ['ada@example.com', 'denied', 'bob@example.com', 'needed by the nightly report'],
      ['ada@example.com', 'expired', '', ''],
    ])
    expect((await rows('identities')).map((r) => [r[0], r[1]])).toEqual([
      ['ada@example.com Ada Engineer', 'human'],
      ['ci-deployer@clients.example.com CI deployer', 'service'],
      ['local:root root', 'unverified'],
    ])
    expect((await rows('attention')).map((r) => r[0]).sort()).toEqual(['ada-cut', 'ada-live', 'ada-tampered', 'root-local'])
    const integrity = await rows('integrity')
    expect(integrity).toHaveLength(report.sessions.length)
    expect(integrity.find((r) => r[0] === 'ada-tampered')![1]).toBe('FAILED')
    expect(integrity.filter((r) => r[1] === 'verified')).toHaveLength(report.sessions.length - 2)
  })

  it('has a section per control whose session links land on the session', async () => {
    const controls = await page.evaluate<string[]>(`[...document.querySelectorAll('[data-control]')].map((e) => e.dataset.control)`)
    expect(controls).toEqual(report.controls.map((c) => c.id))
    const broken = await page.evaluate<string[]>(`[...document.querySelectorAll('a[href^="#session-"]')].map((a) => a.getAttribute('href').slice(1)).filter((id) => !document.getElementById(id))`)
    expect(broken).toEqual([])
    const au9 = await page.evaluate<string>(`document.querySelector('#control-fedramp-AU-9').innerText`)
    expect(au9).toContain('evidence with exceptions')
    expect(au9).toContain('ada-tampered')
  })

  it('shows a typed script as text, never as markup', async () => {
    const bucket = new FileBucket(await tempDir('dbgate-report-bucket-'))
    const [base] = october()
    const evil = '"</td><script>document.title=1</script>"'
    await recordFixture([{...base!, id: 'evil', statements: [{sql: `DROP TABLE ${evil}`, at: base!.statements[0]!.at, class: 'ddl', decision: 'deny', ruleId: 'default.no-drop', outcome: 'rejected'}]}], bucket, tempDir)
    const out = await tempDir('dbgate-report-out-')
    const {report: r} = await produceReport({bucket, cacheDir: await tempDir('dbgate-report-cache-'), since: new Date('2026-10-01T00:00:00Z'), until: new Date('2026-10-31T00:00:00Z'), frameworks: ['soc2'], outDir: out, generator: 'test'})
    expect(r.attempts.map((a) => a.sql)).toEqual([`DROP TABLE ${evil}`])
    const p = await browser.open(pathToFileURL(join(out, 'report.html')).href)
    expect(await p.evaluate<number>('document.scripts.length')).toBe(0)
    expect(await p.evaluate<string>(`document.querySelector('#attempts tbody td:nth-child(5)').innerText`)).toBe(`DROP TABLE ${evil}`)
  })

  it('keeps its charts when printed, and leaves a screenshot and a PDF for people to look at', async () => {
    await mkdir(artifacts, {recursive: true})
    const png = await page.screenshot()
    expect(png.subarray(1, 4).toString()).toBe('PNG')
    await writeFile(join(artifacts, 'report.png'), png)
    await page.emulateMedia('print')
    const printed = await marks('chart-activity')
    expect(printed.filter((b) => b.value > 0).every((b) => b.height > 0 && b.width > 0)).toBe(true)
    const pdf = await page.pdf()
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-')
    await writeFile(join(artifacts, 'report.pdf'), pdf)
    for (const f of ['report.html', 'report.json', 'report.md']) await copyFile(join(dirname(htmlPath), f), join(artifacts, f))
    await page.emulateMedia('screen')
  })
})
