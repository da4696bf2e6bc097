/**
 * A reload (SIGHUP) applies the targets and the TLS files; the rest of gateway.yaml is read at start.
 * The hole: a reload that changed `server.sessionOutlivesToken`, `server.maxSessionDuration`,
 * `server.mcp` (its allowedOrigins), `server.pipelineIdle`, `server.drainTimeout`, `server.log`,
 * `bucket` or `recording` said nothing of it, and the gateway went on with the old values: an
 * operator who tightened one to end sessions with their tokens, or to shut a browser origin out,
 * read "reloaded" and believed it in force. Each such change is now named in a warning, and a
 * change the reload does apply (a target's rules) is not.
 *
 * A real gateway in this process, with a real IdP and PKI; the file is read again as SIGHUP reads it.
 */
import {mkdtemp} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startGateway, type RunningGateway} from '../../src/gateway/gateway.js'
import {fixture, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {gatewayConfig, makePki, type TestPki, closeGatewayTest} from './helpers.js'

describe('dbgate gateway: what a reload does not apply is said', () => {
  let f: Fixture
  let pki: TestPki
  let db: UpstreamInfo
  let dir: string
  let gw: RunningGateway
  const lines: string[] = []
  const env = () => ({...isolatedEnv(), TEST_APP_PASSWORD: db.password})
  const base = ['mcp: {publicUrl: https://gw.test:8443}']
  /** The file as an operator edits it: server lines, the target's lines, and an optional other bucket. */
  let next = {server: base, target: 'allow: [engineering]', bucket: undefined as string | undefined, recording: undefined as string | undefined}

  const loadedNow = () => {
    const loaded = gatewayConfig({pki, dir, issuer: f.dev.issuer, clientId: f.dev.cliClientId, env: env(), server: next.server, targets: targetConfigText('app', db, next.target)})
    if (next.bucket) loaded.config = {...loaded.config, bucket: {...loaded.config.bucket, url: `file://${next.bucket}`}}
    if (next.recording) loaded.config = {...loaded.config, recording: {...loaded.config.recording, previewRows: 3}}
    return loaded
  }
  const warnings = () => lines.filter((l) => l.startsWith('warn reload:'))

  beforeAll(async () => {
    ;[f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase('gwreloadscope')])
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-gwreloadscope-'))
    gw = await startGateway({loaded: loadedNow(), env: env(), log: (level, message) => lines.push(`${level} ${message}`), reloadConfig: async () => loadedNow()})
    await gw.whenReady()
  })
  afterAll(() => closeGatewayTest(gw, f, [dir, pki?.dir]))

  it('warns of nothing when only what it applies changed (a target\'s rules)', async () => {
    next = {...next, target: ['allow: [engineering]', 'rules:', '  - id: freeze', '    match: {class: write}', '    action: deny', '    reason: frozen'].join('\n')}
    await gw.reload()
    expect(warnings()).toEqual([])
  })

  it('names each setting it read only at start, whatever section it is in', async () => {
    next = {
      ...next,
      server: [
        'sessionOutlivesToken: true',
        'maxSessionDuration: 1h',
        'pipelineIdle: 5s',
        'drainTimeout: 5s',
        'log: {level: warn}',
        'maxSessionsPerPerson: 4',
        'mcp: {publicUrl: https://gw.test:8443, allowedOrigins: [https://app.example.com], maxSessions: 10}',
      ],
      bucket: path.join(dir, 'other-bucket'),
      recording: 'previewRows: 3',
    }
    await gw.reload()
    const named = warnings().map((l) => /^warn reload: (\S+) changed; it takes effect at the next start$/.exec(l)?.[1])
    expect(named.sort()).toEqual(
      ['bucket', 'recording', 'server.drainTimeout', 'server.log.level', 'server.maxSessionDuration', 'server.maxSessionsPerPerson', 'server.mcp', 'server.pipelineIdle', 'server.sessionOutlivesToken'].sort(),
    )
  })

  it('says it again at the next reload while the change is still not in force', async () => {
    const before = warnings().length
    await gw.reload()
    expect(warnings().length).toBe(before * 2)
  })
})
