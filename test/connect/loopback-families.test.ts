/**
 * Where the tunnel listens and where it tells its clients to connect must be one and the same
 * address. `localhost` is a name, and on most machines (Debian, Ubuntu, Fedora, macOS) it resolves
 * to both ::1 and 127.0.0.1. `dbgate connect prod --listen localhost` bound the first of them (::1)
 * and printed a URL for 127.0.0.1, and gave a `--` command PGHOST=localhost, which clients resolve
 * to both and try in turn. The other family's port was free for any local process: one that took
 * it (it can see the tunnel's port in /proc/net/tcp6, or take a fixed --port first) asked the
 * clients that came to it for their password in clear, as any PostgreSQL server may, and received
 * the tunnel's secret, with which it could use the tunnel as the person. A name that merely looks
 * like a loopback address (127.999.0.1 is not an address, so the resolver looks it up) listened
 * wherever DNS or /etc/hosts said, all interfaces included, without --force-listen.
 *
 * The machine's /etc/hosts is replaced, for the tunnel and its clients only, by a usual one
 * (`unshare -Urm` and a bind mount); the impostor runs outside, in the same network.
 */
import {spawn, spawnSync} from 'node:child_process'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {createInterface} from 'node:readline'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {Tunnel} from '../../src/proxy/tunnel.js'
import {createTestDatabase, upstreamInfo, withClient, type UpstreamInfo} from '../helpers/pg.js'
import {run} from '../helpers/run.js'

const BIN = path.resolve('bin/run.js')

/** What Debian and Ubuntu ship (macOS and Fedora name localhost on both lines too). */
const USUAL_HOSTS = '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n0.0.0.0 127.999.0.1\n'

/** Whether this machine has an IPv6 loopback to listen on. */
const ipv6 = await new Promise<boolean>((resolve) => {
  const s = net.createServer()
  s.once('error', () => resolve(false))
  s.listen({host: '::1', port: 0}, () => s.close(() => resolve(true)))
})

/** Whether the tunnel and its clients can be given a hosts file of their own; the attacks need both address families too. */
const canUnshare = ipv6 && spawnSync('unshare', ['-Urm', 'true']).status === 0

interface Impostor {
  /** Passwords clients sent it. */
  stolen: string[]
  close(): Promise<void>
}

/**
 * A PostgreSQL-speaking server of another local process on `host`:`port`: it answers an SSLRequest
 * with N, asks for the password in clear and keeps what it gets.
 */
function impostor(host: string, port: number): Promise<Impostor | undefined> {
  const stolen: string[] = []
  const server = net.createServer((socket) => {
    let buf = Buffer.alloc(0)
    let started = false
    socket.on('error', () => {})
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d])
      for (;;) {
        if (!started) {
          if (buf.length < 4 || buf.length < buf.readInt32BE(0)) return
          const len = buf.readInt32BE(0)
          const code = buf.readInt32BE(4)
          buf = buf.subarray(len)
          if (code === 80877103 || code === 80877104) {
            socket.write('N')
            continue
          }
          started = true
          socket.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3]))
          continue
        }
        if (buf.length < 5 || buf.length < 1 + buf.readInt32BE(1)) return
        if (buf[0] === 0x70) stolen.push(buf.toString('utf8', 5, 1 + buf.readInt32BE(1) - 1))
        const fields = Buffer.from('SFATAL\0C28P01\0Mno\0\0')
        const err = Buffer.alloc(5)
        err[0] = 0x45
        err.writeInt32BE(4 + fields.length, 1)
        socket.end(Buffer.concat([err, fields]))
        return
      }
    })
  })
  return new Promise((resolve) => {
    server.once('error', () => resolve(undefined))
    server.listen({host, port, exclusive: true}, () =>
      resolve({stolen, close: () => new Promise<void>((r) => server.close(() => r()))}),
    )
  })
}

/** A port free on both loopback addresses, so the test decides who takes which. */
async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen({host: '127.0.0.1', port: 0}, () => {
        const p = (s.address() as net.AddressInfo).port
        s.close(() => resolve(p))
      })
    })
    const v6 = await impostor('::1', port)
    if (v6) {
      await v6.close()
      return port
    }
  }
}

/** `argv` with the usual hosts file in place of the machine's. */
function underUsualHosts(hosts: string, argv: string[]): [string, string[]] {
  return ['unshare', ['-Urm', 'sh', '-c', 'mount --bind "$0" /etc/hosts && exec "$@"', hosts, ...argv]]
}

describe.skipIf(!canUnshare)('the tunnel tells its clients the address it listens on, which no other process holds', () => {
  let db: UpstreamInfo
  let dir: string
  let config: string
  let hosts: string
  let env: NodeJS.ProcessEnv
  beforeAll(async () => {
    db = await createTestDatabase('listenaddr')
    await withClient(db.url, (c) => c.query("create table customers (id int, email text); insert into customers values (1, 'alice@example.com')"))
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-listen-'))
    config = path.join(dir, 'dbgate.yaml')
    await writeFile(config, `targets:\n  app:\n    host: ${db.host}\n    port: ${db.port}\n    database: ${db.database}\n    user: ${db.user}\n    password: env:APP_DB_PASSWORD\n    tls: disable\n`)
    hosts = path.join(dir, 'hosts')
    await writeFile(hosts, USUAL_HOSTS)
    env = {APP_DB_PASSWORD: db.password, DBGATE_CONFIG: '', DBGATE_LISTEN: '', DBGATE_PORT: '', XDG_CONFIG_HOME: path.join(dir, 'xdg'), XDG_STATE_HOME: path.join(dir, 'state'), NO_COLOR: '1', PGHOST: '', PGPORT: '', PGPASSWORD: '', PGUSER: '', PGDATABASE: ''}
  })
  afterAll(async () => {
    if (dir) await rm(dir, {recursive: true, force: true})
  })

  it('--listen localhost: a process that takes the port in the other address family receives no client, and so no secret', async () => {
    const [cmd, args] = underUsualHosts(hosts, ['node', BIN, 'connect', 'app', '--config', config, '--listen', 'localhost', '--json'])
    const child = spawn(cmd, args, {cwd: dir, env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']})
    let stderr = ''
    child.stderr.on('data', (d) => (stderr += d))
    const exited = new Promise((r) => child.once('exit', r))
    let taken: Impostor[] = []
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({input: child.stdout}).once('line', resolve)
        child.once('exit', () => reject(new Error(`dbgate connect exited: ${stderr}`)))
      })
      const info = JSON.parse(line) as {url: string; host: string; port: number; password: string}
      // Another local process takes the tunnel's port wherever it is still free.
      taken = (await Promise.all(['127.0.0.1', '::1'].map((h) => impostor(h, info.port)))).filter((x): x is Impostor => x !== undefined)
      expect(taken.length, 'the impostor found the port free on one of the two loopback addresses').toBe(1)

      // A program given the URL (--json, the banner's URI).
      const viaUrl = new pg.Client({connectionString: info.url, connectionTimeoutMillis: 10_000})
      const read = await viaUrl.connect().then(
        async () => (await viaUrl.query('select email from customers')).rows,
        (e: Error) => e.message,
      )
      await viaUrl.end().catch(() => {})
      // libpq given host and port (--json's fields), as a person's script passes them.
      const [pcmd, pargs] = underUsualHosts(hosts, ['psql', '-X', '-At', '-c', 'select 1'])
      const viaFields = await run(pcmd, pargs, {env: {...env, PGHOST: info.host, PGPORT: String(info.port), PGUSER: 'u', PGDATABASE: db.database, PGPASSWORD: info.password, PGSSLMODE: 'disable', PGCONNECT_TIMEOUT: '10'}})

      expect(taken[0]!.stolen, 'a client handed the tunnel secret to another process').toEqual([])
      expect(read).toEqual([{email: expect.any(String)}])
      expect(viaFields.stdout.trim(), viaFields.stderr).toBe('1')
      expect(info.host).toBe('127.0.0.1')
      expect(new URL(info.url).hostname).toBe('127.0.0.1')
    } finally {
      child.kill('SIGINT')
      await exited
      await Promise.all(taken.map((t) => t.close()))
    }
  })

  it('--listen localhost with a fixed --port: a process holding one address family first gets no client; the tunnel listens on 127.0.0.1 or says that it is taken', async () => {
    for (const held of ['127.0.0.1', '::1']) {
      const port = await freePort()
      const holder = (await impostor(held, port))!
      try {
        // The command after -- uses both ways a client learns the tunnel: DATABASE_URL and PG* variables.
        const script = 'psql "$DATABASE_URL" -X -Atc "select 1"; psql -X -Atc "select 2"'
        const [cmd, args] = underUsualHosts(hosts, ['node', BIN, 'connect', 'app', '--config', config, '--listen', 'localhost', '--port', String(port), '--', 'sh', '-c', script])
        const r = await run(cmd, args, {cwd: dir, env: {...env, PGCONNECT_TIMEOUT: '10'}})
        expect(holder.stolen, `${held} held: a client handed the tunnel secret to another process`).toEqual([])
        if (held === '127.0.0.1') {
          expect(r.code, r.stdout + r.stderr).toBe(2)
          expect(r.stderr).toContain(`127.0.0.1:${port}`)
          expect(r.stderr).toContain('The port is taken')
        } else {
          expect(r.stdout.trim().split('\n'), r.stderr).toEqual(['1', '2'])
          expect(r.code).toBe(0)
        }
      } finally {
        await holder.close()
      }
    }
  })

  it('a listen address that is a name, not an address, is refused without --force-listen: the resolver would choose where the tunnel listens', async () => {
    for (const name of ['127.999.0.1', 'ip6-localhost']) {
      const [cmd, args] = underUsualHosts(hosts, ['node', BIN, 'connect', 'app', '--config', config, '--listen', name, '--', 'sh', '-c', 'echo "$PGHOST"'])
      const r = await run(cmd, args, {cwd: dir, env})
      expect(r.stdout, `${name}: the tunnel listened on what the name resolves to`).toBe('')
      expect(r.code).toBe(2)
      expect(r.stderr).toContain(`refusing to listen on ${name}: it is a name, not an IP address`)
      expect(r.stderr).toContain('--listen 127.0.0.1')
    }
  })
})

/**
 * The same name on the tunnel's other side: a target at `host: localhost` (a database in a container
 * published on 127.0.0.1 only, `listen_addresses = '127.0.0.1'`) was dialled by name, ::1 first.
 * Another local process listening on ::1 at the database's port was asked for the login, requested
 * the password in clear, which the tunnel sends to a loopback host, and received the target's
 * password (the person's `env:` or keychain secret). The tunnel now dials localhost as 127.0.0.1.
 */
describe.skipIf(!canUnshare)("the tunnel's login to a target at localhost", () => {
  let db: UpstreamInfo
  let dir: string
  let hosts: string
  beforeAll(async () => {
    db = await createTestDatabase('upstreamlocal')
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-upstream-localhost-'))
    hosts = path.join(dir, 'hosts')
    await writeFile(hosts, USUAL_HOSTS)
  })
  afterAll(async () => {
    if (dir) await rm(dir, {recursive: true, force: true})
  })

  it('goes to the database, not to a process on the other loopback address of its port, whatever the tls mode', async (ctx) => {
    // The suite's database listens on 127.0.0.1 only; its port on ::1 is free for anyone. One that
    // holds both (DBGATE_TEST_PG_URL) leaves no room for the impostor.
    const other = await impostor('::1', db.port)
    if (!other) ctx.skip()
    try {
      for (const tls of ['disable', 'prefer']) {
        const config = path.join(dir, `${tls}.yaml`)
        await writeFile(config, `targets:\n  app:\n    host: localhost\n    port: ${db.port}\n    database: ${db.database}\n    user: ${db.user}\n    password: env:APP_DB_PASSWORD\n    tls: ${tls}\n`)
        const env = {APP_DB_PASSWORD: db.password, DBGATE_CONFIG: '', XDG_CONFIG_HOME: path.join(dir, 'xdg'), XDG_STATE_HOME: path.join(dir, 'state'), XDG_DATA_HOME: path.join(dir, 'data'), NO_COLOR: '1', PGHOST: '', PGPORT: '', PGPASSWORD: ''}
        const [cmd, args] = underUsualHosts(hosts, ['node', BIN, 'connect', 'app', '--config', config, '--', 'psql', '-X', '-At', '-c', 'select current_database()'])
        const r = await run(cmd, args, {cwd: dir, env})
        expect(other!.stolen, `tls: ${tls}: the target's password went to another process`).toEqual([])
        expect(r.stdout.trim(), r.stderr).toBe(db.database)
        expect(r.code).toBe(0)
      }
    } finally {
      await other?.close()
    }
  })
})

describe('a target at localhost where nothing listens on 127.0.0.1', () => {
  it('says the name was dialled as 127.0.0.1, and how to reach a database on ::1', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'dbgate-localhost-refused-'))
    try {
      const port = await freePort()
      const config = path.join(dir, 'dbgate.yaml')
      await writeFile(config, `targets:\n  app:\n    host: localhost\n    port: ${port}\n    database: d\n    user: u\n    tls: disable\n`)
      const r = await run('node', [BIN, 'connect', 'app', '--config', config, '--', 'true'], {cwd: dir, env: {DBGATE_CONFIG: '', XDG_CONFIG_HOME: path.join(dir, 'xdg'), XDG_STATE_HOME: path.join(dir, 'state'), XDG_DATA_HOME: path.join(dir, 'data'), NO_COLOR: '1'}})
      expect(r.code).toBe(1)
      expect(r.stderr).toContain(`Cannot reach the database of target app at localhost:${port} (dialled as 127.0.0.1): nothing accepts connections there (connection refused).`)
      expect(r.stderr).toContain('a database that listens on ::1 only needs targets.app.host: "::1"')
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })
})

describe('the addresses a tunnel reports', () => {
  it('are the ones it listens on, for loopback names and literals alike', async () => {
    const db = upstreamInfo('postgres')
    const cases = [
      ['localhost', '127.0.0.1'],
      ['LOCALHOST', '127.0.0.1'],
      ['127.0.0.1', '127.0.0.1'],
      ['[::1]', '::1'],
      ['::1', '::1'],
    ] as const
    for (const [asked, bound] of cases.filter(([, b]) => ipv6 || b !== '::1')) {
      const tunnel = new Tunnel({target: {host: db.host, port: db.port, database: db.database, user: db.user, password: db.password, tls: 'disable'}, listen: {kind: 'tcp', host: asked, port: 0}})
      try {
        const address = await tunnel.listen()
        expect([asked, address.host, address.pgHost]).toEqual([asked, bound, bound])
        // Reachable there: the address reported is the one held.
        await new Promise<void>((resolve, reject) => {
          const probe = net.connect({host: bound, port: address.port})
          probe.once('connect', () => resolve(void probe.destroy()))
          probe.once('error', reject)
        })
      } finally {
        await tunnel.close(0)
      }
    }
  })
})
