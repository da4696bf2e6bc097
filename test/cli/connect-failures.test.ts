/**
 * `dbgate connect` when the target's database cannot be reached or refuses dbgate: the built
 * binary, real sockets on loopback, the suite's real PostgreSQL. Each failure names the target,
 * the configuration key to check and what to try, instead of a bare Node or server error.
 */
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {createServer, type Server, type Socket} from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createTestDatabase, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'
import {encodeError} from '../../src/wire/backend.js'

const BIN = path.resolve('bin/run.js')
let dir: string
let db: UpstreamInfo
let silent: Server
let silentPort: number
const held: Socket[] = []

async function connect(target: string, extra: NodeJS.ProcessEnv = {}) {
  const config = path.join(dir, `${Math.random().toString(36).slice(2)}.yaml`)
  await writeFile(config, `targets:\n  shop:\n${target.replace(/^/gm, '    ')}\n`)
  return {config, r: await run('node', [BIN, 'connect', 'shop', '--config', config, '--', 'true'], {cwd: dir, env: {XDG_CONFIG_HOME: dir, XDG_DATA_HOME: dir, XDG_STATE_HOME: dir, XDG_CACHE_HOME: dir, DBGATE_CONFIG: undefined, ...extra}})}
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as {port: number}).port
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dbgate-connect-fail-'))
  db = await createTestDatabase()
  // Accepts connections and never says a word: a firewall that drops, a hung server.
  silent = createServer((socket) => void held.push(socket))
  silentPort = await listen(silent)
})
afterAll(async () => {
  for (const s of held) s.destroy()
  await new Promise((r) => silent.close(r))
  await rm(dir, {recursive: true, force: true})
})

describe('dbgate connect cannot use the target', () => {
  it('connection refused: names the target, host and port keys, and what to check', async () => {
    const closed = createServer()
    const port = await listen(closed)
    await new Promise((r) => closed.close(r))
    const {config, r} = await connect(`host: 127.0.0.1\nport: ${port}\ndatabase: shop\nuser: shop_app\ntls: disable`)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`Error: Cannot reach the database of target shop at 127.0.0.1:${port}: nothing accepts connections there (connection refused).`)
    expect(r.stderr).toContain(`Try this: Check targets.shop.host and targets.shop.port in ${config}, and that the database is running.`)
    expect(r.stderr).toContain('Code: TARGET_UNREACHABLE')
    expect(r.stderr).not.toMatch(/connect ECONNREFUSED/)
  })

  it("a server whose error message carries terminal escapes: shown as text, not acted on", async () => {
    // Any address a dbgate.yaml names answers what it likes; a clipboard write (OSC 52), a line erased, reversed text.
    const message = 'denied\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07\x1b[2K\r\u202etoo'
    const hostile = createServer((socket) => {
      socket.once('data', () => socket.end(encodeError({severity: 'FATAL', code: '28000', message})))
    })
    const port = await listen(hostile)
    try {
      const {r} = await connect(`host: 127.0.0.1\nport: ${port}\ndatabase: shop\nuser: shop_app\ntls: disable`)
      expect(r.code).not.toBe(0)
      expect(r.stderr).toContain('denied\\x1b]52;c;')
      for (const raw of ['\x1b', '\x07', '\r', '\u202e']) expect(r.stderr, `${JSON.stringify(raw)} reached the terminal`).not.toContain(raw)
    } finally {
      await new Promise((resolve) => hostile.close(resolve))
    }
  })

  it('a host name that does not resolve', async () => {
    const {r} = await connect('host: db.invalid\ndatabase: shop\nuser: shop_app\ntls: disable')
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('Cannot reach the database of target shop: the host name "db.invalid" does not resolve.')
    expect(r.stderr).toContain('Check targets.shop.host')
    expect(r.stderr).not.toMatch(/getaddrinfo/)
  })

  it('a server that never answers: gives up after the configured timeout and says which key raises it', async () => {
    const port = silentPort
    const {r} = await connect(`host: 127.0.0.1\nport: ${port}\ndatabase: shop\nuser: shop_app\ntls: disable\nconnectTimeout: 1s`)
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`The database of target shop at 127.0.0.1:${port} did not answer within 1s.`)
    expect(r.stderr).toContain('raise targets.shop.connectTimeout')
  })

  it('a wrong configured password: says it is targets.shop.password, not your own sign-in', async () => {
    const {r} = await connect(`host: ${db.host}\nport: ${db.port}\ndatabase: ${db.database}\nuser: ${db.user}\npassword: env:SHOP_DB_PASSWORD\ntls: disable`, {SHOP_DB_PASSWORD: 'not-the-password'})
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`The database of target shop refused dbgate's login as "${db.user}": password authentication failed for user "${db.user}".`)
    expect(r.stderr).toContain('This is the database password in targets.shop.password (env:SHOP_DB_PASSWORD)')
    expect(r.stderr).toContain('not your own sign-in')
    expect(r.stderr).toContain('Code: TARGET_AUTH_FAILED')
    expect(r.stderr).not.toContain('not-the-password')
  })

  it('shows progress on a terminal while it dials', async () => {
    const port = silentPort
    const config = path.join(dir, 'progress.yaml')
    await writeFile(config, `targets:\n  shop:\n    host: 127.0.0.1\n    port: ${port}\n    database: shop\n    user: shop_app\n    tls: disable\n    connectTimeout: 1s\n`)
    // `script` gives the command a real terminal, as a person has.
    const r = await run('script', ['-qec', `node ${BIN} connect shop --config ${config} -- true`, '/dev/null'], {cwd: dir, env: {XDG_CONFIG_HOME: dir, XDG_DATA_HOME: dir, XDG_STATE_HOME: dir, XDG_CACHE_HOME: dir, DBGATE_CONFIG: undefined, NO_COLOR: '1'}})
    const screen = r.stdout.replace(/\r/g, '')
    expect(screen).toContain(`Connecting to shop (127.0.0.1:${port}/shop; gives up after 1s) …`)
    expect(screen.indexOf('Connecting to shop')).toBeLessThan(screen.indexOf('did not answer within 1s'))
  })
})
