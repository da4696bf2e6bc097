import {existsSync} from 'node:fs'
import {fileURLToPath} from 'node:url'
import {Worker} from 'node:worker_threads'
import {analyze} from './analyze.js'
import type {Analysis, AnalyzeOptions} from './types.js'

/**
 * Texts at least this long are parsed on a worker thread: parsing is synchronous WASM, and a
 * 700 KB statement takes about half a second, which would stall every other session of the
 * tunnel. Below it, a thread hop costs more than the parse.
 */
export const OFFLOAD_THRESHOLD = 16 * 1024

let worker: Worker | undefined
let unavailable = false
let nextId = 1
const waiting = new Map<number, {resolve: (a: Analysis) => void; reject: (e: Error) => void}>()

function workerScript(): URL | undefined {
  // Built code sits beside the worker's .js; the test runner loads sources, so look in dist/ too.
  for (const candidate of [new URL('./analyze-worker.js', import.meta.url), new URL('../../dist/policy/analyze-worker.js', import.meta.url)]) {
    if (existsSync(fileURLToPath(candidate))) return candidate
  }
  return undefined
}

function getWorker(): Worker | undefined {
  if (worker || unavailable) return worker
  const script = workerScript()
  if (!script) {
    unavailable = true
    return undefined
  }
  const w = new Worker(script)
  w.unref()
  w.on('message', (msg: {id: number; analysis?: Analysis; error?: string}) => {
    const p = waiting.get(msg.id)
    if (!p) return
    waiting.delete(msg.id)
    if (msg.analysis) p.resolve(msg.analysis)
    else p.reject(new Error(msg.error ?? 'analysis failed'))
  })
  const fail = (error: Error) => {
    worker = undefined
    for (const p of waiting.values()) p.reject(error)
    waiting.clear()
  }
  w.on('error', fail)
  w.on('exit', (code) => fail(new Error(`the SQL analysis worker exited (code ${code})`)))
  worker = w
  return w
}

/** Analyses `sql` on the worker thread; where no worker can run, on this thread. */
export function analyzeOffThread(sql: string, opts: AnalyzeOptions = {}): Promise<Analysis> {
  const w = getWorker()
  if (!w) return Promise.resolve(analyze(sql, opts))
  const id = nextId++
  return new Promise((resolve, reject) => {
    waiting.set(id, {resolve, reject})
    w.postMessage({id, sql, opts})
  })
}
