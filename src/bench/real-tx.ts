/**
 * pgbench -S through the benchmark's tunnel worker, with every thread's CPU per transaction: what
 * the main thread, the libuv pool and V8's threads spend. One or more builds (`--checkouts`, the
 * first is this one by default) run alternately against one PostgreSQL, so a change is compared
 * with its base under the same load. `--perf DIR` records each run with `perf record -g` (the
 * workers start with `--perf-basic-prof`), for `perf script` to put the samples in components.
 *
 *   node dist/bench/real-tx.js [--checkouts /tmp/base,.] [--modes simple,prepared] [--seconds 8]
 *     [--warm 2] [--rounds 2] [--gap 5] [--clients 8] [--off recording,...] [--perf DIR]
 *
 * Needs the embedded PostgreSQL (or DBGATE_BENCH_PG_URL) and pgbench, as run.js does.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {mkdir, mkdtemp, readdir, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import type {Endpoint} from './client.js'
import {openPgbenchDatabase} from './pgbench-database.js'
import type {WorkerBrief, WorkerMessage} from './tunnel-worker.js'

const {values} = parseArgs({
  options: {
    checkouts: {type: 'string'},
    modes: {type: 'string', default: 'simple,prepared'},
    seconds: {type: 'string', default: '8'},
    warm: {type: 'string', default: '2'},
    rounds: {type: 'string', default: '2'},
    gap: {type: 'string', default: '5'},
    clients: {type: 'string', default: '8'},
    off: {type: 'string', default: ''},
    perf: {type: 'string'},
  },
})
const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const checkouts = (values.checkouts ?? here).split(',').map((c) => path.resolve(c))
const modes = values.modes!.split(',') as ('simple' | 'prepared')[]
const seconds = Number(values.seconds)
const clients = Number(values.clients)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))


/** Every thread's user and system ticks, by kind: the main thread, the libuv pool, V8's threads, the rest. */
async function threads(pid: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  // Node 20 names every thread `node`: the libuv pool's four are the last made (at the first file
  // operation, after V8's platform threads and the inspector's), the main thread is the process's id.
  const tids = (await readdir(`/proc/${pid}/task`).catch(() => [] as string[])).sort((a, b) => Number(a) - Number(b))
  const pool = new Set(tids.length >= 11 ? tids.slice(-4) : [])
  for (const tid of tids) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '')
    if (!stat) continue
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const kind = tid === String(pid) ? 'main' : pool.has(tid) || comm.startsWith('libuv-worker') ? 'pool' : 'v8'
    out[`${kind} user`] = (out[`${kind} user`] ?? 0) + Number(f[11])
    out[`${kind} sys`] = (out[`${kind} sys`] ?? 0) + Number(f[12])
  }
  return out
}

function pgbench(ep: Endpoint, mode: string, secs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('pgbench', ['-n', '-S', '-M', mode, '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(secs)], {
      env: {...process.env, PGHOST: ep.host, PGPORT: String(ep.port), PGUSER: ep.user, PGPASSWORD: ep.password, PGDATABASE: ep.database, PGSSLMODE: 'disable'},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('close', (code) => {
      const tx = /^number of transactions actually processed: (\d+)/m.exec(stdout)
      if (code !== 0 || !tx) reject(new Error(`pgbench failed: ${stderr.slice(-500)}`))
      else resolve(Number(tx[1]))
    })
  })
}

interface Worker {
  checkout: string
  pid: number
  ep: Endpoint
  child: ChildProcess
  dataDir: string
}

async function startWorker(checkout: string, db: Endpoint): Promise<Worker> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dbgate-real-tx-'))
  const brief: WorkerBrief = {pg: db, off: (values.off ? values.off.split(',') : []) as WorkerBrief['off'], dataDir}
  const execArgv = ['--expose-gc', ...(values.perf ? ['--perf-basic-prof'] : [])]
  const child = spawn(process.execPath, [...execArgv, path.join(checkout, 'dist', 'bench', 'tunnel-worker.js')], {
    env: {...process.env, DBGATE_BENCH_WORKER: JSON.stringify(brief)},
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const ready = await new Promise<Extract<WorkerMessage, {type: 'ready'}>>((resolve, reject) => {
    child.on('message', (m: WorkerMessage) => {
      if (m.type === 'ready') resolve(m)
      else if (m.type === 'error') reject(new Error(m.message))
    })
    child.once('exit', (code) => reject(new Error(`worker exited ${code}`)))
  })
  return {checkout, pid: child.pid!, child, dataDir, ep: {host: ready.host, port: ready.port, user: ready.user, password: ready.password, database: ready.database}}
}

// perf cannot make its output's folder, and a perf that exits at once would leave the run waiting.
if (values.perf) await mkdir(values.perf, {recursive: true})
const {db, drop} = await openPgbenchDatabase('dbgate_real_tx', 200)
const workers: Worker[] = []
try {
  for (const c of checkouts) workers.push(await startWorker(c, db))
  for (const w of workers) for (const mode of modes) await pgbench(w.ep, mode, Number(values.warm))
  await sleep(Number(values.gap) * 1000)
  console.log('| round | build | mode | tx | main user | main sys | pool | V8 and other | total | after (shipping) |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|')
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const mode of modes) {
      for (const w of workers) {
        const before = await threads(w.pid)
        let perf: ChildProcess | undefined
        if (values.perf) {
          perf = spawn('perf', ['record', '-F', '999', '-g', '-p', String(w.pid), '-o', path.join(values.perf, `${path.basename(w.checkout)}-${mode}-${round}.data`)], {stdio: 'ignore'})
          await sleep(300)
        }
        const tx = await pgbench(w.ep, mode, seconds)
        const after = await threads(w.pid)
        if (perf) {
          perf.kill('SIGINT')
          await new Promise((r) => perf!.once('close', r))
        }
        await sleep(Number(values.gap) * 1000)
        const later = await threads(w.pid)
        const d = (k: string, a = after, b = before) => (((a[k] ?? 0) - (b[k] ?? 0)) * 1e4) / tx
        const sum = (a: Record<string, number>, b: Record<string, number>) => Object.keys(a).reduce((s, k) => s + d(k, a, b), 0)
        const f = (x: number) => x.toFixed(1)
        console.log(
          `| ${round} | ${path.basename(w.checkout)} | ${mode} | ${tx} | ${f(d('main user'))} | ${f(d('main sys'))} | ${f(d('pool user') + d('pool sys'))} | ${f(d('v8 user') + d('v8 sys'))} | ${f(sum(after, before))} | ${f(sum(later, after))} |`,
        )
      }
    }
  }
} finally {
  for (const w of workers) {
    w.child.send({type: 'close'})
    await new Promise((r) => w.child.once('exit', r))
    await rm(w.dataDir, {recursive: true, force: true})
  }
  await drop()
}
