import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {startGateway, type RunningGateway, type StartGatewayOptions} from '../../src/gateway/gateway.js'
import {fixture, type Fixture} from '../identity/helpers.js'
import {isolatedEnv, targetConfigText} from '../helpers/open.js'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {gatewayConfig, makePki, type TestPki} from './helpers.js'

export interface AppGateway {
  f: Fixture
  pki: TestPki
  db: UpstreamInfo
  dir: string
  gw: RunningGateway
  close(): Promise<void>
}

/**
 * A real gateway, in this process, with a real IdP and a PKI of its own, in front of one test
 * database as the target `app` that engineering may use. `server` adds lines to its `server:`
 * section (`identity` to its `identity:` section, `target` replaces the target's own keys, default
 * `allow: [engineering]`); `prepare` runs on the database before the gateway
 * starts; `log`, `observer` and `logRepeats` are passed to the gateway.
 */
export async function startAppGateway(
  name: string,
  opts: {server?: string[]; identity?: string[]; target?: string; prepare?: (db: UpstreamInfo) => Promise<unknown>} & Pick<StartGatewayOptions, 'log' | 'observer' | 'logRepeats'> = {},
): Promise<AppGateway> {
  const [f, pki, db] = await Promise.all([fixture(), makePki(), createTestDatabase(name)])
  const dir = await mkdtemp(path.join(tmpdir(), `dbgate-${name}-`))
  await opts.prepare?.(db)
  const env = {...isolatedEnv(), TEST_APP_PASSWORD: db.password}
  const gw = await startGateway({
    loaded: gatewayConfig({pki, dir, issuer: f.dev.issuer, clientId: f.dev.cliClientId, env, ...(opts.server ? {server: opts.server} : {}), ...(opts.identity ? {identity: opts.identity} : {}), targets: targetConfigText('app', db, opts.target ?? 'allow: [engineering]')}),
    env,
    log: opts.log,
    observer: opts.observer,
    logRepeats: opts.logRepeats,
  })
  await gw.whenReady()
  return {
    f,
    pki,
    db,
    dir,
    gw,
    async close() {
      await gw.close(500)
      await f.close()
      await Promise.all([dir, pki.dir].map((d) => rm(d, {recursive: true, force: true})))
    },
  }
}
