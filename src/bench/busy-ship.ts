/**
 * The background shipper's cost with busy sessions, by thread: N live sessions each recording R
 * statements a (simulated) second, a shipping pass every 5 simulated seconds as a tunnel's
 * `Shipper` runs it (`checkpointLive`, then `shipPending` with the size-spaced snapshots and the
 * kept gzips), then the sessions end and are shipped. Prints the CPU of the passes per recorded
 * statement: the main thread's (what competes with the tunnel's statements), the libuv pool's
 * (reads, gzip, the bucket's writes) and V8's threads'.
 *
 *   node dist/bench/busy-ship.js [--sessions 8] [--rate 1000] [--seconds 60] [--rounds 3]
 */
import {readdirSync, readFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'
import {FileBucket} from '../bucket/index.js'
import {Recorder} from '../audit/recorder.js'
import {CompressedLogs, shipPending} from '../audit/shipper.js'
import {loadOrCreateInstallationKey} from '../audit/signing.js'
import type {Identity} from '../identity/types.js'

const {values} = parseArgs({options: {sessions: {type: 'string', default: '8'}, rate: {type: 'string', default: '1000'}, seconds: {type: 'string', default: '60'}, rounds: {type: 'string', default: '3'}}})
const sessions = Number(values.sessions)
const rate = Number(values.rate)
const seconds = Number(values.seconds)

const identity: Identity = {subject: 'u-bench', email: 'bench@example.com', name: 'Bench', groups: [], issuer: 'https://login.example.com', kind: 'human', tokenHash: 'a'.repeat(64), tokenId: 'jti-1', expiresAt: new Date('2030-01-01T00:00:00Z')}

/** Clock ticks of this process's threads: the main one, the libuv pool (the last four made), the rest. */
function ticks(): {main: number; pool: number; other: number} {
  const tids = readdirSync('/proc/self/task').sort((a, b) => Number(a) - Number(b))
  const pool = new Set(tids.length >= 11 ? tids.slice(-4) : [])
  const out = {main: 0, pool: 0, other: 0}
  for (const tid of tids) {
    let stat: string
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
    } catch {
      continue
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const t = Number(f[11]) + Number(f[12])
    if (tid === String(process.pid)) out.main += t
    else if (pool.has(tid)) out.pool += t
    else out.other += t
  }
  return out
}

const sql = 'SELECT abalance FROM pgbench_accounts WHERE aid = $1'
for (let round = 1; round <= Number(values.rounds); round++) {
  const root = await mkdtemp(join(tmpdir(), 'dbgate-busy-ship-'))
  try {
    let clock = Date.parse('2026-01-01T00:00:00Z')
    const now = () => new Date(clock)
    const key = await loadOrCreateInstallationKey(join(root, 'keys'))
    const bucket = new FileBucket(join(root, 'bucket'))
    const spoolDir = join(root, 'spool')
    const recorder = await Recorder.open({signer: key, dbgateVersion: '0.0.0', spoolDir, now, flushIntervalMs: 3_600_000, onError: (e) => console.error(e.message)})
    const compressed = new CompressedLogs()
    const live = Array.from({length: sessions}, (_, i) =>
      recorder.startSession({sessionId: `busy-${round}-${i}`, identity, target: 'bench', database: 'app', dbUser: 'u', client: {address: '127.0.0.1:1'}, startedAt: now()}),
    )
    const spent = {main: 0, pool: 0, other: 0}
    let statements = 0
    const pass = async () => {
      const t0 = ticks()
      await recorder.checkpointLive()
      await shipPending({bucket, signer: key, spoolDir, now, liveSnapshotBytesPerSecond: 1024 * 1024, compressed})
      const t1 = ticks()
      spent.main += t1.main - t0.main
      spent.pool += t1.pool - t0.pool
      spent.other += t1.other - t0.other
    }
    for (let t = 0; t < seconds; t++) {
      for (let j = 0; j < rate; j++) {
        clock += 1000 / rate
        for (let i = 0; i < sessions; i++) {
          live[i]!.statement({sessionId: live[i]!.sessionId, connectionId: i, protocol: 'parse', sql, params: [String((j * 7919) % 100000)], verdict: {action: 'allow'}, startedAt: now(), durationMs: 0.1, commandTags: ['SELECT 1'], rows: 1, outcome: 'ok'})
        }
        if (j % 50 === 49) recorder.release()
      }
      recorder.release()
      statements += rate * sessions
      if (t % 5 === 4) await pass()
    }
    await Promise.all(live.map((s) => s.end('done')))
    await pass()
    const us = (x: number) => ((x * 1e4) / statements).toFixed(2)
    console.log(`round ${round}: ${statements} statements, shipping CPU per statement: main ${us(spent.main)} µs, pool ${us(spent.pool)} µs, other ${us(spent.other)} µs`)
  } finally {
    await rm(root, {recursive: true, force: true})
  }
}
