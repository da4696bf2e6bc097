import {randomBytes} from 'node:crypto'
import {chmod, mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {pathToFileURL} from 'node:url'
import pg from 'pg'
import {loadConfig} from '../config/load.js'
import {startEmbeddedPg, type EmbeddedPg} from '../dev/embedded-pg.js'
import {startDevOidcProvider, type DevProvider} from '../dev/oidc-dev-provider.js'
import {startGateway} from '../gateway/gateway.js'
import {writeServerPki} from '../util/tls-certs.js'
import {demoConfigYaml, demoGatewayYaml, DEMO_GATEWAY, DEMO_PEOPLE, DEMO_ROLE, DEMO_TARGET, type DemoPersonSpec} from './people.js'
import {sampleSchemaSql} from './sample-data.js'

/** One person of the tour, with the environment that gives them their own token store, keys and spool. */
export interface DemoPerson extends DemoPersonSpec {
  /** Their private directory inside the demo directory, standing in for their own machine. */
  home: string
  /** What to add to a shell (or a child process) to act as this person. */
  env: Record<string, string>
}

/** The demo's gateway, running in the demo's own process. */
export interface DemoGateway {
  name: string
  address: {host: string; port: number}
  api: {host: string; port: number}
  /** The CA certificate that signed the gateway's certificate (sslrootcert, gateway.ca). */
  ca: string
  /** The gateway's own configuration: the only file that holds the database password. */
  configPath: string
  /** The key that signs the gateway's recordings. */
  signingKeyId: string
}

export interface DemoEnvironment {
  dir: string
  /** The people's dbgate.yaml: the gateway and their identity provider, no targets, no password. */
  configPath: string
  bucketUrl: string
  database: EmbeddedPg
  idp: DevProvider
  gateway: DemoGateway
  people: readonly DemoPerson[]
  person(user: string): DemoPerson
  /** Stops everything this environment started and removes its directory; safe to call twice. */
  stop(): Promise<void>
}

export interface DemoOptions {
  log?: (line: string) => void
  /**
   * Seconds between the CLI's device-code polls, as told by the provider. A second keeps the
   * tour brisk; a real IdP says 5.
   */
  pollInterval?: number
  /** Keep the demo directory (configuration, bucket, everyone's files, the report) when stopping. */
  keep?: boolean
}

/**
 * Everything the tour needs, on loopback, with nothing installed beforehand: an embedded
 * PostgreSQL holding the sample shop, the development identity provider with alice, bob and
 * carol, a bucket directory, a gateway (TLS from a CA made here) that alone holds the database
 * password, and the people's dbgate.yaml naming the gateway, in a fresh directory.
 */
export async function startDemo(opts: DemoOptions = {}): Promise<DemoEnvironment> {
  const log = opts.log ?? (() => {})
  const dir = await mkdtemp(path.join(tmpdir(), 'dbgate-demo-'))
  const cleanups: (() => Promise<void>)[] = opts.keep ? [] : [() => rm(dir, {recursive: true, force: true})]
  let stopping: Promise<void> | undefined
  const stop = () => {
    stopping ??= (async () => {
      for (const fn of cleanups.reverse()) await fn().catch(() => {})
    })()
    return stopping
  }
  try {
    log('starting an embedded PostgreSQL on 127.0.0.1 …')
    const database = await startEmbeddedPg({password: randomBytes(18).toString('base64url')})
    cleanups.push(() => database.stop())
    const role = {user: DEMO_ROLE, password: randomBytes(18).toString('base64url')}
    await loadShop(database, role)
    log('loaded the sample shop: customers, orders and payments with fake personal data')

    log('starting the DEVELOPMENT identity provider (fixed users, plain HTTP, not for production) …')
    const idp = await startDevOidcProvider({pollInterval: opts.pollInterval ?? 1})
    cleanups.push(() => idp.stop())

    const bucketDir = path.join(dir, 'bucket')
    await mkdir(bucketDir)
    const bucketUrl = pathToFileURL(bucketDir).href
    // The gateway's side, in its own directory: certificate, key, the database password, its state.
    const gatewayDir = path.join(dir, 'gateway')
    await mkdir(gatewayDir, {mode: 0o700})
    const pki = await writeServerPki(gatewayDir, ['localhost', '127.0.0.1'], {caName: 'dbgate demo CA'})
    const passwordFile = path.join(gatewayDir, `${DEMO_TARGET}.password`)
    await writeFile(passwordFile, role.password, {mode: 0o600})
    // writeFile's mode is filtered by the umask and ignored for an existing file; the secret must be 0600.
    await chmod(passwordFile, 0o600)
    const gatewayConfigPath = path.join(gatewayDir, 'gateway.yaml')
    await writeFile(
      gatewayConfigPath,
      demoGatewayYaml({
        issuer: idp.issuer,
        clientId: idp.cliClientId,
        bucketUrl,
        database: {host: database.host, port: database.port, user: role.user},
        passwordFile,
        tls: {cert: pki.cert, key: pki.key},
        stateDir: path.join(gatewayDir, 'state'),
      }),
    )
    log('starting the gateway: TLS with a certificate from a CA made just now, the only holder of the database password …')
    const gw = await startGateway({
      loaded: await loadConfig({configPath: gatewayConfigPath}),
      log: (level, message) => {
        // Its warnings narrate the tour (approval requests, decisions); the tour's steps say that already.
        if (level === 'error') log(`gateway error: ${message}`)
      },
    })
    cleanups.push(() => gw.close(2000))
    await gw.whenReady()
    const gateway: DemoGateway = {name: DEMO_GATEWAY, address: gw.address, api: gw.api!, ca: pki.ca, configPath: gatewayConfigPath, signingKeyId: gw.signingKeyId}

    const configPath = path.join(dir, 'dbgate.yaml')
    await writeFile(
      configPath,
      demoConfigYaml({
        issuer: idp.issuer,
        clientId: idp.cliClientId,
        bucketUrl,
        gateway: {address: `${gw.address.host}:${gw.address.port}`, api: `${gw.api!.host}:${gw.api!.port}`, ca: pki.ca},
      }),
    )

    const people: DemoPerson[] = []
    for (const spec of DEMO_PEOPLE) {
      const home = path.join(dir, spec.user)
      const env = personEnv(configPath, home)
      for (const [key, value] of Object.entries(env)) if (key.startsWith('XDG_')) await mkdir(value, {recursive: true, mode: 0o700})
      people.push({...spec, home, env})
    }
    log(`wrote ${configPath}`)
    return {
      dir,
      configPath,
      bucketUrl,
      database,
      idp,
      gateway,
      people,
      person(user) {
        const found = people.find((p) => p.user === user)
        if (!found) throw new Error(`the demo has no user ${user}`)
        return found
      },
      stop,
    }
  } catch (error) {
    await stop()
    throw error
  }
}

/**
 * The shop belongs to an ordinary role, not the superuser: the gateway connects as that role, as
 * a real deployment would, so the tour's DDL needs only the rights an application owner has.
 */
async function loadShop(database: EmbeddedPg, role: {user: string; password: string}): Promise<void> {
  const admin = new pg.Client({connectionString: database.url()})
  await admin.connect()
  try {
    const name = admin.escapeIdentifier(role.user)
    await admin.query(`create role ${name} login password ${admin.escapeLiteral(role.password)}`)
    await admin.query(`create database ${admin.escapeIdentifier(DEMO_TARGET)} owner ${name}`)
  } finally {
    await admin.end()
  }
  const shop = new pg.Client({host: database.host, port: database.port, database: DEMO_TARGET, user: role.user, password: role.password})
  await shop.connect()
  try {
    await shop.query(sampleSchemaSql())
  } finally {
    await shop.end()
  }
}

/**
 * Every per-user place dbgate writes (token store, signing key, spool, caches) goes under the
 * person's own directory: the three people never share tokens, and nothing lands in the real home.
 */
function personEnv(configPath: string, home: string): Record<string, string> {
  return {
    DBGATE_CONFIG: configPath,
    // The demo's tokens are throwaway; a keychain entry would outlive the demo directory.
    DBGATE_KEYRING: 'off',
    XDG_CONFIG_HOME: path.join(home, 'config'),
    XDG_DATA_HOME: path.join(home, 'data'),
    XDG_STATE_HOME: path.join(home, 'state'),
    XDG_CACHE_HOME: path.join(home, 'cache'),
  }
}
