/**
 * Small SVG charts for the report, written as markup so the file needs no script and no network,
 * and prints as sharply as it displays. Every mark carries its value in `data-value` and a
 * `<title>`, and every value is also printed as text, so a chart is readable without hovering,
 * on paper, and by a test.
 */

export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'})[c]!)
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

/** Vertical bars, one per day. */
export function dayBars(id: string, title: string, points: readonly DayPoint[], unit: string): string {
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
    out += `<rect class="bar" x="${x}" y="${y(p.value)}" width="${barW.toFixed(1)}" height="${(y(0) - y(p.value)).toFixed(1)}" fill="${PALETTE.bar}" data-label="${esc(p.day)}" data-value="${p.value}"><title>${esc(p.day)}: ${p.value} ${esc(unit)}</title></rect>`
    if (p.value > 0 && points.length <= 45) out += `<text x="${(x + barW / 2).toFixed(1)}" y="${y(p.value) - 3}" text-anchor="middle" font-size="9" fill="${PALETTE.text}">${p.value}</text>`
    if (i % every === 0) out += `<text x="${(x + barW / 2).toFixed(1)}" y="${f.height - f.bottom + 14}" text-anchor="middle" font-size="10" fill="${PALETTE.axis}">${esc(shortDay(p.day))}</text>`
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

/** Lines over days, for a few series that share one axis. */
export function dayLines(id: string, title: string, series: readonly Series[]): string {
  const f: Frame = {width: 760, height: 240, left: 44, right: 12, top: 30, bottom: 36}
  const days = series[0]?.points.map((p) => p.day) ?? []
  const ticks = niceTicks(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p.value))))
  const top = ticks.at(-1)!
  const plotW = f.width - f.left - f.right
  const plotH = f.height - f.top - f.bottom
  const y = (v: number) => +(f.top + plotH - (v / top) * plotH).toFixed(1)
  const x = (i: number) => +(f.left + (days.length <= 1 ? plotW / 2 : (i / (days.length - 1)) * plotW)).toFixed(1)
  let out = open(id, title, f) + yAxis(f, ticks, y)
  const every = labelEvery(days.length, plotW)
  days.forEach((d, i) => {
    if (i % every === 0) out += `<text x="${x(i)}" y="${f.height - f.bottom + 14}" text-anchor="middle" font-size="10" fill="${PALETTE.axis}">${esc(shortDay(d))}</text>`
  })
  series.forEach((s, si) => {
    const path = s.points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(i)},${y(p.value)}`).join(' ')
    out += `<path d="${path}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`
    s.points.forEach((p, i) => {
      out += `<circle class="point" data-series="${esc(s.name)}" data-label="${esc(p.day)}" data-value="${p.value}" cx="${x(i)}" cy="${y(p.value)}" r="${p.value > 0 ? 3.5 : 1.5}" fill="${s.color}"><title>${esc(p.day)}: ${p.value} ${esc(s.name)}</title></circle>`
      if (p.value > 0 && days.length <= 45) out += `<text x="${x(i)}" y="${y(p.value) - 6}" text-anchor="middle" font-size="9" fill="${s.color}">${p.value}</text>`
    })
    const lx = f.left + si * 160
    out += `<line x1="${lx}" x2="${lx + 22}" y1="12" y2="12" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/><text class="legend" x="${lx + 28}" y="16" font-size="11" fill="${PALETTE.text}">${esc(s.name)} (${s.points.reduce((n, p) => n + p.value, 0)})</text>`
  })
  out += `<line x1="${f.left}" x2="${f.width - f.right}" y1="${y(0)}" y2="${y(0)}" stroke="${PALETTE.axis}"/>`
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
