/**
 * Small SVG charts for the report, written as markup so the file needs no script and no network,
 * and prints as sharply as it displays. Every mark carries its value in `data-value` and a
 * `<title>`, and every value is also printed as text, so a chart is readable without hovering,
 * on paper, and by a test.
 */

import {visible} from '../util/visible.js'

export function esc(s: string | number): string {
  // Bidi overrides and zero-width characters reorder or hide what a reader sees even as text: they are written as visible escapes first.
  return visible(String(s), {lines: true}).replace(/[&<>"']/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'})[c]!)
}

export const PALETTE = {bar: '#2f6db5', denied: '#c0392b', approved: '#1e8449', axis: '#555', grid: '#ddd', text: '#222'}

/** A rounded-up axis maximum with 4-5 readable ticks. */
export function niceTicks(max: number): number[] {
  if (max <= 0) return [0, 1]
  const rough = max / 4
  const mag = 10 ** Math.floor(Math.log10(rough))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= rough)!
  const stepInt = Math.max(1, Math.ceil(step))
  const ticks: number[] = []
  for (let t = 0; t < max + stepInt; t += stepInt) ticks.push(t)
  return ticks
}

interface Frame {
  width: number
  height: number
  left: number
  right: number
  top: number
  bottom: number
}

function open(id: string, title: string, f: Frame): string {
  return `<svg id="${esc(id)}" class="chart" role="img" aria-labelledby="${esc(id)}-title" viewBox="0 0 ${f.width} ${f.height}" width="100%" preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg"><title id="${esc(id)}-title">${esc(title)}</title>`
}

function yAxis(f: Frame, ticks: number[], y: (v: number) => number): string {
  return ticks
    .map((t) => `<line x1="${f.left}" x2="${f.width - f.right}" y1="${y(t)}" y2="${y(t)}" stroke="${PALETTE.grid}" stroke-width="1"/><text x="${f.left - 6}" y="${y(t) + 4}" text-anchor="end" font-size="11" fill="${PALETTE.axis}">${t}</text>`)
    .join('')
}

/** Which of `n` x labels to print so they never overlap: about one per 60 px. */
function labelEvery(n: number, plotWidth: number): number {
  return Math.max(1, Math.ceil(n / Math.max(1, Math.floor(plotWidth / 60))))
}

const shortDay = (day: string) => day.slice(5)

export interface DayPoint {
  day: string
  value: number
}

/** `1 statement`, `2 statements`: a unit given as [singular, plural]. */
export type Unit = readonly [one: string, many: string]
const count = (n: number, unit: Unit) => `${n} ${n === 1 ? unit[0] : unit[1]}`

/** Vertical bars, one per day. */
export function dayBars(id: string, title: string, points: readonly DayPoint[], unit: Unit): string {
  const f: Frame = {width: 760, height: 240, left: 44, right: 12, top: 14, bottom: 36}
  const ticks = niceTicks(Math.max(0, ...points.map((p) => p.value)))
  const top = ticks.at(-1)!
  const plotW = f.width - f.left - f.right
  const plotH = f.height - f.top - f.bottom
  const y = (v: number) => +(f.top + plotH - (v / top) * plotH).toFixed(1)
  const slot = plotW / Math.max(1, points.length)
  const barW = Math.max(1, slot * 0.72)
  const every = labelEvery(points.length, plotW)
  let out = open(id, title, f) + yAxis(f, ticks, y)
  points.forEach((p, i) => {
    const x = +(f.left + i * slot + (slot - barW) / 2).toFixed(1)
    out += `<rect class="bar" x="${x}" y="${y(p.value)}" width="${barW.toFixed(1)}" height="${(y(0) - y(p.value)).toFixed(1)}" fill="${PALETTE.bar}" data-label="${esc(p.day)}" data-value="${p.value}"><title>${esc(p.day)}: ${esc(count(p.value, unit))}</title></rect>`
    if (p.value > 0 && points.length <= 45) out += `<text x="${(x + barW / 2).toFixed(1)}" y="${y(p.value) - 3}" text-anchor="middle" font-size="9" fill="${PALETTE.text}">${p.value}</text>`
    if (i % every === 0) out += `<text class="xlabel" x="${(x + barW / 2).toFixed(1)}" y="${f.height - f.bottom + 14}" text-anchor="middle" font-size="10" fill="${PALETTE.axis}">${esc(shortDay(p.day))}</text>`
  })
  out += `<line x1="${f.left}" x2="${f.width - f.right}" y1="${y(0)}" y2="${y(0)}" stroke="${PALETTE.axis}"/>`
  out += `<text x="${f.left}" y="${f.height - 4}" font-size="10" fill="${PALETTE.axis}">UTC day (month-day)</text>`
  return out + '</svg>'
}

export interface Series {
  name: string
  color: string
  /** Drawn dashed as well as coloured, so two series stay apart in greyscale print. */
  dash?: string
  points: readonly DayPoint[]
}

/**
 * Bars side by side per day, for a few series that share one axis. Bars rather than lines: a line
 * from one day to the next draws a rise through days that had no such activity.
 */
export function dayGroupedBars(id: string, title: string, series: readonly Series[]): string {
  const f: Frame = {width: 760, height: 240, left: 44, right: 12, top: 30, bottom: 36}
  const days = series[0]?.points.map((p) => p.day) ?? []
  const ticks = niceTicks(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p.value))))
  const top = ticks.at(-1)!
  const plotW = f.width - f.left - f.right
  const plotH = f.height - f.top - f.bottom
  const y = (v: number) => +(f.top + plotH - (v / top) * plotH).toFixed(1)
  const slot = plotW / Math.max(1, days.length)
  const groupW = Math.max(2, slot * 0.72)
  const barW = groupW / Math.max(1, series.length)
  const every = labelEvery(days.length, plotW)
  let out = open(id, title, f) + yAxis(f, ticks, y)
  days.forEach((d, i) => {
    const x0 = f.left + i * slot + (slot - groupW) / 2
    series.forEach((s, si) => {
      const p = s.points[i]!
      const x = +(x0 + si * barW).toFixed(1)
      out += `<rect class="point" data-series="${esc(s.name)}" data-label="${esc(p.day)}" data-value="${p.value}" x="${x}" y="${y(p.value)}" width="${Math.max(1, barW - 1).toFixed(1)}" height="${(y(0) - y(p.value)).toFixed(1)}" fill="${s.color}"${s.dash ? ` fill-opacity="0.75" stroke="${s.color}" stroke-dasharray="${s.dash}"` : ''}><title>${esc(p.day)}: ${p.value} ${esc(s.name)}</title></rect>`
      if (p.value > 0 && days.length <= 45) out += `<text x="${(x + barW / 2).toFixed(1)}" y="${y(p.value) - 3}" text-anchor="middle" font-size="9" fill="${s.color}">${p.value}</text>`
    })
    // Centred under its own slot, so neither the first nor the last label runs off the chart.
    if (i % every === 0) out += `<text class="xlabel" x="${(f.left + i * slot + slot / 2).toFixed(1)}" y="${f.height - f.bottom + 14}" text-anchor="middle" font-size="10" fill="${PALETTE.axis}">${esc(shortDay(d))}</text>`
  })
  series.forEach((s, si) => {
    const lx = f.left + si * 160
    out += `<rect x="${lx}" y="6" width="14" height="10" fill="${s.color}"/><text class="legend" x="${lx + 20}" y="16" font-size="11" fill="${PALETTE.text}">${esc(s.name)} (${s.points.reduce((n, p) => n + p.value, 0)})</text>`
  })
  out += `<line x1="${f.left}" x2="${f.width - f.right}" y1="${y(0)}" y2="${y(0)}" stroke="${PALETTE.axis}"/>`
  out += `<text x="${f.left}" y="${f.height - 4}" font-size="10" fill="${PALETTE.axis}">UTC day (month-day)</text>`
  return out + '</svg>'
}

export interface Bar {
  label: string
  value: number
  /** A second, overlaid value drawn in red (e.g. the denied part of all statements). */
  part?: number
}

/** Horizontal bars with their labels and values, for rankings. */
export function rankBars(id: string, title: string, bars: readonly Bar[], partName?: string): string {
  const rowH = 24
  const f: Frame = {width: 760, height: Math.max(1, bars.length) * rowH + 16, left: 230, right: 90, top: 8, bottom: 8}
  const max = Math.max(1, ...bars.map((b) => b.value))
  const plotW = f.width - f.left - f.right
  let out = open(id, title, f)
  if (bars.length === 0) out += `<text x="${f.width / 2}" y="${f.top + 12}" text-anchor="middle" font-size="12" fill="${PALETTE.axis}">nothing in this period</text>`
  bars.forEach((b, i) => {
    const yy = f.top + i * rowH
    const w = +((b.value / max) * plotW).toFixed(1)
    const label = b.label.length > 34 ? `${b.label.slice(0, 33)}…` : b.label
    out += `<text x="${f.left - 8}" y="${yy + 16}" text-anchor="end" font-size="12" fill="${PALETTE.text}">${esc(label)}<title>${esc(b.label)}</title></text>`
    out += `<rect class="bar" x="${f.left}" y="${yy + 4}" width="${Math.max(w, 1)}" height="${rowH - 8}" fill="${PALETTE.bar}" data-label="${esc(b.label)}" data-value="${b.value}"><title>${esc(b.label)}: ${b.value}</title></rect>`
    if (b.part) {
      const pw = +((b.part / max) * plotW).toFixed(1)
      out += `<rect class="part" x="${f.left}" y="${yy + 4}" width="${Math.max(pw, 1)}" height="${rowH - 8}" fill="${PALETTE.denied}" data-label="${esc(b.label)}" data-value="${b.part}"><title>${esc(b.label)}: ${b.part} ${esc(partName ?? '')}</title></rect>`
    }
    out += `<text x="${f.left + Math.max(w, 1) + 6}" y="${yy + 16}" font-size="12" fill="${PALETTE.text}">${b.value}${b.part ? ` (${b.part} ${esc(partName ?? '')})` : ''}</text>`
  })
  return out + '</svg>'
}
