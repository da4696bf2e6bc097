/** Runs analyses for the tunnel's main thread, so a huge statement never stalls other sessions. */
import {parentPort} from 'node:worker_threads'
import {analyze} from './analyze.js'
import {loadParser} from '../sql/parser.js'
import type {AnalyzeOptions} from './types.js'

await loadParser()
parentPort!.on('message', (msg: {id: number; sql: string; opts: AnalyzeOptions}) => {
  try {
    parentPort!.postMessage({id: msg.id, analysis: analyze(msg.sql, msg.opts)})
  } catch (error) {
    parentPort!.postMessage({id: msg.id, error: (error as Error).message})
  }
})
