/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, or `npm run bench -- --cpu-prof DIR`): the
 * functions that take the most time by themselves ("self") and with what they call ("total"),
 * as shares of the samples. Idle time (the event loop waiting) is counted apart so that the
 * shares describe the work.
 *
 *   node dist/bench/profile.js FILE.cpuprofile [--top N]
 */
import {readFile} from 'node:fs/promises'
import path from 'node:path'

interface ProfileNode {
  id: number
  callFrame: {functionName: string; url: string; lineNumber: number}
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

function label(n: ProfileNode): string {
  const f = n.callFrame
  const name = f.functionName || '(anonymous)'
  if (!f.url) return name
  const url = f.url.replace(/^file:\/\//, '')
  const rel = url.includes('/node_modules/') ? url.slice(url.lastIndexOf('/node_modules/') + 14) : path.relative(process.cwd(), url)
  return `${name} ${rel}:${f.lineNumber + 1}`
}

export function summarise(profile: CpuProfile, top = 25): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const selfUs = new Map<number, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
  }
  const self = new Map<string, number>()
  const total = new Map<string, number>()
  let idle = 0
  let busy = 0
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!
    const name = node.callFrame.functionName
    if (name === '(idle)') {
      idle += us
      continue
    }
    busy += us
    const l = label(node)
    self.set(l, (self.get(l) ?? 0) + us)
    // Inclusive time: once per distinct label on the stack, so recursion is not counted twice.
    const seen = new Set<string>()
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cl = label(byId.get(cur)!)
      if (seen.has(cl)) continue
      seen.add(cl)
      total.set(cl, (total.get(cl) ?? 0) + us)
    }
  }
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`
  const lines: string[] = []
  const wall = (profile.endTime - profile.startTime) / 1e6
  lines.push(`${wall.toFixed(1)} s profiled; busy ${(busy / 1e6).toFixed(1)} s, idle ${(idle / 1e6).toFixed(1)} s; shares below are of busy time`)
  lines.push('', 'self time')
  for (const [l, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`${pct(us)}  ${l}`)
  lines.push('', 'total time (with callees)')
  for (const [l, us] of [...total].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`${pct(us)}  ${l}`)
  return lines.join('\n')
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  const file = args.find((a) => !a.startsWith('--'))
  if (!file) throw new Error('usage: node dist/bench/profile.js FILE.cpuprofile [--top N]')
  const i = args.indexOf('--top')
  const top = i >= 0 ? Number(args[i + 1]) : 25
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile
  process.stdout.write(`${summarise(profile, top)}\n`)
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).message}\n`)
  process.exit(1)
})
