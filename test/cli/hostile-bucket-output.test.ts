/**
 * `dbgate sessions sync` names each session it could not ship and why. The why is the bucket's own
 * answer: an S3-compatible endpoint's error `<Code>` becomes the error's name, and whoever runs that
 * endpoint chooses it. Printed raw to the terminal, it could rewrite the line (ESC and CSI, `\r`),
 * reorder it (bidi) or hide letters (zero-width), e.g. to turn "failed … (kept in the spool)" into
 * what reads as a success. A real S3 client talks to a real HTTP server on 127.0.0.1 here.
 */
import {createServer, type Server} from 'node:http'
import type {AddressInfo} from 'node:net'
import {writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {Recorder} from '../../src/audit/recorder.js'
import {loadOrCreateInstallationKey, type InstallationKey} from '../../src/audit/signing.js'
import SessionsSync from '../../src/commands/sessions/sync.js'
import {alice, removeTempDirs, stmt, tempDir} from '../audit/helpers.js'
import {captureCommand} from '../helpers/capture.js'

const root = join(import.meta.dirname, '..', '..')
const savedEnv = {...process.env}
let key: InstallationKey
let server: Server
let code = ''

/** What the endpoint puts in `<Code>`, as XML text (character references included). */
const CODES: {name: string; xml: string; raw: string}[] = [
  {name: 'ESC by character reference', xml: '&#x1b;[2K&#x1b;[1Ashipped', raw: '\x1b'},
  {name: 'C1 CSI', xml: '\u009b2Kshipped', raw: '\u009b'},
  {name: 'carriage return', xml: 'Denied&#13;shipped', raw: '\r'},
  {name: 'bidi override', xml: 'Denied\u202edeppihs', raw: '\u202e'},
  {name: 'zero-width', xml: 'Acc\u200bessDenied', raw: '\u200b'},
  {name: 'OSC 8 link', xml: '&#x1b;]8;;https://evil.example/&#x1b;\\here&#x1b;]8;;&#x1b;\\', raw: '\x1b'},
]

async function record(spoolDir: string, sessionId: string): Promise<void> {
  const rec = await Recorder.open({signer: key, dbgateVersion: '0.1.0', spoolDir, checkpointEvery: 0})
  const s = rec.startSession({sessionId, identity: alice, target: 'prod', database: 'app', dbUser: 'app_rw', client: {address: '127.0.0.1:1'}, startedAt: new Date('2026-03-01T10:00:00Z')})
  s.statement(stmt(sessionId, 'select 1'))
  await s.end('client-closed')
}

beforeAll(async () => {
  const dataHome = await tempDir('dbgate-data-')
  Object.assign(process.env, {
    XDG_DATA_HOME: dataHome,
    XDG_CACHE_HOME: await tempDir('dbgate-cache-'),
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
  })
  delete process.env.DBGATE_BUCKET
  delete process.env.DBGATE_CONFIG
  delete process.env.AWS_PROFILE
  key = await loadOrCreateInstallationKey(join(dataHome, 'dbgate', 'keys'))
  // Every request is refused with a 400 whose error code the endpoint chose.
  server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(400, {'content-type': 'application/xml'})
      res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>refused</Message><RequestId>1</RequestId></Error>`)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
}, 60_000)
afterAll(async () => {
  process.env = savedEnv
  await new Promise((resolve) => server.close(resolve))
  await removeTempDirs()
})

describe('sessions sync shows a hostile bucket error code as visible text', () => {
  for (const c of CODES) {
    it(c.name, async () => {
      code = c.xml
      const spoolDir = await tempDir('dbgate-spool-')
      await record(spoolDir, 'sync-1')
      const config = join(await tempDir('dbgate-config-'), 'dbgate.yaml')
      const port = (server.address() as AddressInfo).port
      await writeFile(config, [`bucket: {url: 's3://audit/dbgate', endpoint: 'http://127.0.0.1:${port}', region: us-east-1, forcePathStyle: true}`, 'targets:', '  prod: {host: 127.0.0.1, database: app, user: app_rw}', ''].join('\n'))
      const r = await captureCommand(() => SessionsSync.run(['--config', config, '--spool-dir', spoolDir], {root}))
      expect(r.exitCode).toBe(1)
      expect(r.stderr).toContain('failed  sync-1: BUCKET_ERROR')
      expect(r.stderr).toContain('(kept in the spool)')
      // The endpoint's code is there, each character it could act with written as an escape.
      expect(r.stderr).toContain(`\\${c.raw.codePointAt(0)! <= 0xff ? 'x' + c.raw.codePointAt(0)!.toString(16).padStart(2, '0') : 'u' + c.raw.codePointAt(0)!.toString(16)}`)
      expect(r.stderr).not.toContain(c.raw)
      expect(r.stdout).not.toContain(c.raw)
    })
  }
})
