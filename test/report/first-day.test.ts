/**
 * A first-day report, as `dbgate report --since 1d` writes it on the day recording began: the
 * period starts the day before anything was recorded, which is not a gap. Read back in headless
 * Chromium: no false gap, charts that start with the recording, every x label inside its chart,
 * counts in the right number, and supporting sessions that match the figures they support.
 */
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {pathToFileURL} from 'node:url'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {FileBucket} from '../../src/bucket/index.js'
import {FRAMEWORKS, type Report} from '../../src/report/model.js'
import {produceReport} from '../../src/report/produce.js'
import {removeTempDirs, tempDir} from '../audit/helpers.js'
import {Chromium, type Page} from '../helpers/chromium.js'
import {ada, recordFixture, type FixtureSession} from './fixture.js'

let browser: Chromium
let page: Page
let report: Report
let markdown: string

const firstDay = (h: number, m = 0) => new Date(Date.UTC(2026, 10, 22, h, m))

beforeAll(async () => {
  const bucket = new FileBucket(await tempDir('dbgate-first-day-bucket-'))
  const sessions: FixtureSession[] = [
    {id: 'first-0001', identity: ada, target: 'shop', start: firstDay(9), ending: 'ended', statements: [{sql: 'select 1', at: firstDay(9, 1), class: 'read', decision: 'allow', rows: 1}]},
    {id: 'first-0002', identity: ada, target: 'shop', start: firstDay(10), ending: 'ended', statements: []},
  ]
  await recordFixture(sessions, bucket, tempDir)
  const out = await tempDir('dbgate-first-day-out-')
  // `--since 1d` at noon: from noon the day before, when nothing was recording yet.
  ;({report} = await produceReport({
    bucket,
    cacheDir: await tempDir('dbgate-first-day-cache-'),
    since: new Date(Date.UTC(2026, 10, 21, 12)),
    until: firstDay(12),
    frameworks: [...FRAMEWORKS],
    outDir: out,
    generator: 'dbgate test',
    now: firstDay(12),
  }))
  markdown = await readFile(join(out, 'report.md'), 'utf8')
  browser = await Chromium.launch()
  page = await browser.open(pathToFileURL(join(out, 'report.html')).href)
})

afterAll(async () => {
  await browser?.close()
  await removeTempDirs()
})

describe('a report whose period starts before recording began', () => {
  it('reports no gap for the day before the first session log', async () => {
    expect(report.period.days).toBe(2)
    expect(report.sources.recordingSince).toBe('2026-11-22')
    expect(report.gaps).toEqual([])
    expect(await page.evaluate<number>(`document.querySelectorAll('.gap').length`)).toBe(0)
    expect(await page.evaluate<string>(`document.querySelector('.nogap').innerText`)).toBe(
      'No gaps: every day since recording began (2026-11-22, the first session log in the bucket) has session logs, and every log verified.',
    )
    expect(markdown).toContain('No gaps: every day since recording began (2026-11-22')
    // The logging controls are not red for a day nothing could have been logged on.
    const exceptions = await page.evaluate<string[]>(`[...document.querySelectorAll('.control li')].map((e) => e.innerText)`)
    expect(exceptions.filter((e) => /no session logs/.test(e))).toEqual([])
  })

  it('starts the daily charts when recording began, with bars and no line rising through an empty day', async () => {
    const days = await page.evaluate<string[]>(`[...document.querySelectorAll('#chart-activity .bar')].map((e) => e.dataset.label)`)
    expect(days).toEqual(['2026-11-22'])
    expect(await page.evaluate<number>(`document.querySelectorAll('#chart-decisions path').length`)).toBe(0)
    expect(await page.evaluate<string>(`document.querySelector('#recording-since').innerText`)).toMatch(/Recording began on 2026-11-22/)
  })

  it('keeps every x label inside its chart', async () => {
    const outside = await page.evaluate<string[]>(`[...document.querySelectorAll('svg.chart')].flatMap((svg) => { const box = svg.getBoundingClientRect(); return [...svg.querySelectorAll('text[text-anchor="middle"][font-size="10"]')].filter((t) => { const b = t.getBoundingClientRect(); return b.left < box.left || b.right > box.right }).map((t) => svg.id + ' ' + t.textContent) })`)
    expect(outside).toEqual([])
    expect(await page.evaluate<number>(`document.querySelectorAll('svg.chart text[text-anchor="middle"][font-size="10"]').length`)).toBeGreaterThan(0)
  })

  it('says "1 statement", not "1 statements"', async () => {
    const titles = await page.evaluate<string[]>(`[...document.querySelectorAll('#chart-activity .bar title, #chart-sessions .bar title')].map((e) => e.textContent)`)
    expect(titles).toEqual(['2026-11-22: 1 statement', '2026-11-22: 2 sessions'])
    expect(await page.evaluate<string>(`document.body.innerText`)).not.toMatch(/\b1 statements\b/)
  })

  it('lists as many supporting sessions as the figures it supports count', async () => {
    const controls = await page.evaluate<{id: string; sessions: number; supporting: number; links: number}[]>(`[...document.querySelectorAll('.control')].map((c) => {
      const figure = [...c.querySelectorAll('.figures tr')].find((tr) => tr.cells[0].innerText === 'sessions' || tr.cells[0].innerText === 'session logs')
      const m = /Supporting sessions \\((\\d+)\\)/.exec(c.innerText)
      return {id: c.id, sessions: figure ? Number(figure.cells[1].innerText) : -1, supporting: m ? Number(m[1]) : -1, links: c.querySelectorAll('p:last-child a').length}
    }).filter((c) => c.sessions >= 0)`)
    expect(controls.length).toBeGreaterThan(0)
    for (const c of controls) expect({id: c.id, supporting: c.supporting, links: c.links}).toEqual({id: c.id, supporting: c.sessions, links: c.sessions})
  })
})
