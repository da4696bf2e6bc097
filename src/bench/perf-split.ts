/**
 * Puts the samples of a `perf record -g` of a tunnel worker (started with `--perf-basic-prof`, as
 * `real-tx.js --perf DIR` does) into components. The main thread's samples go by their stack: the
 * background shipper (any frame of `audit/shipper`, `audit/spool-scan`, zlib's callbacks or
 * `checkpointLive`), the spool's write (the group commit before a client write), the spool's
 * syncs and timers, then the innermost dbgate frame's module; user and kernel apart. The other
 * threads' samples go by what they run (fdatasync, deflate, reads, V8's collector, ...).
 *
 *   node dist/bench/perf-split.js FILE.data [FILE.data ...]
 */
import {spawnSync} from 'node:child_process'

interface Sample {
  main: boolean
  frames: string[]
}

function samples(file: string): Sample[] {
  const r = spawnSync('perf', ['script', '-i', file, '-F', 'pid,tid,ip,sym,dso'], {encoding: 'utf8', maxBuffer: 1 << 30})
  if (r.status !== 0) throw new Error(`perf script -i ${file} failed: ${r.stderr}`)
  const out: Sample[] = []
  for (const block of r.stdout.split('\n\n')) {
    const lines = block.split('\n').filter((l) => l.trim() !== '')
    const head = /^\s*(\d+)\/(\d+)/.exec(lines[0] ?? '')
    if (!head) continue
    out.push({main: head[1] === head[2], frames: lines.slice(1).map((l) => l.trim())})
  }
  return out
}

const SHIPPER = /\/dist\/audit\/(shipper|spool-scan)\.js|node:zlib|JS:\S*checkpointLive /
const SPOOL_WRITE = /JS:\S*(writeQueued|writeNow|beforeRelease) /
const SPOOL_OTHER = /\/dist\/audit\/spool\.js/

function mainComponent(s: Sample): string {
  const stack = s.frames.join('\n')
  const where = s.frames[0]?.includes('[kernel.kallsyms]') ? 'kernel' : 'user'
  if (SHIPPER.test(stack)) return `shipper (background), ${where}`
  if (SPOOL_WRITE.test(stack)) return `spool: write before the client's, ${where}`
  if (SPOOL_OTHER.test(stack)) return `spool: syncs and timers, ${where}`
  for (const f of s.frames) {
    const m = /\/dist\/([^/\s]+)\/([^/\s:]+)\.js/.exec(f)
    if (!m) continue
    const dir = m[1] === 'audit' || (m[1] === 'connect' && m[2] === 'recording') ? `recording (${m[1]}/${m[2]})` : m[1]!
    return `${dir}, ${where}`
  }
  // V8's collector posts its main-thread tasks through the same async handle as the pool's completions.
  if (/RunForegroundTask/.test(stack)) return `V8 tasks (incremental marking, scavenges), ${where}`
  if (/uv__work_done/.test(stack)) return `pool completions (no dbgate frame), ${where}`
  return `no dbgate frame, ${where}`
}

const OTHER_THREADS: [RegExp, string][] = [
  [/fdatasync|fsync/, 'fdatasync'],
  [/deflate/, 'gzip (deflate)'],
  [/ksys_p?read|ksys_readv/, 'file reads'],
  [/ksys_p?write|ksys_writev/, 'file writes'],
  [/Marking|Mark(Compact|ing)|Sweeper|Scaveng|Evacuat|Concurrent/, "V8's collector"],
  [/Compile|Turbofan|Maglev|Optimiz/, "V8's compilers"],
  [/futex/, 'futex (hand-offs)'],
]

function otherComponent(s: Sample): string {
  const stack = s.frames.join('\n')
  for (const [re, name] of OTHER_THREADS) if (re.test(stack)) return name
  return 'other'
}

for (const file of process.argv.slice(2)) {
  const all = samples(file)
  const main = all.filter((s) => s.main)
  const rest = all.filter((s) => !s.main)
  const table = (title: string, list: Sample[], key: (s: Sample) => string) => {
    const counts = new Map<string, number>()
    for (const s of list) counts.set(key(s), (counts.get(key(s)) ?? 0) + 1)
    console.log(`\n${title}: ${list.length} samples\n| component | samples | share |\n|---|---:|---:|`)
    for (const [k, n] of [...counts].sort((a, b) => b[1] - a[1])) console.log(`| ${k} | ${n} | ${((100 * n) / list.length).toFixed(1)}% |`)
  }
  console.log(`# ${file}`)
  table('main thread', main, mainComponent)
  table('other threads', rest, otherComponent)
}
