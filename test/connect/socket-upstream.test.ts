/**
 * A target whose host is a directory reaches the server over the unix socket in it, as libpq does
 * (`host: /var/run/postgresql`): the one upstream path on a shared machine that no other local user
 * can stand in for, as anyone may listen at a loopback port while the database is down.
 */
import {appendFile, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startEmbeddedPg, type EmbeddedPg} from '../../src/dev/embedded-pg.js'
import {openPipelineTunnel} from '../helpers/open.js'
import {withClient} from '../helpers/pg.js'
import {run} from '../helpers/run.js'

const BIN = path.resolve('bin/run.js')

describe('a target at a unix socket directory', () => {
  let server: EmbeddedPg
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-socket-'))
    server = await startEmbeddedPg({prepare: (data) => appendFile(path.join(data, 'postgresql.auto.conf'), `unix_socket_directories = '${data}'\n`)})
    await withClient(server.url(), (c) => c.query('create table items (id int); insert into items values (1), (2)'))
  })
  afterAll(async () => {
    await server?.stop()
    await rm(dir, {recursive: true, force: true})
  })

  const target = (port: number, extra = '') => `host: ${server.dataDir}\nport: ${port}\ndatabase: postgres\nuser: ${server.user}\npassword: env:SOCKET_PG_PASSWORD\n${extra}`
  async function connect(body: string) {
    const config = path.join(dir, `${Math.random().toString(36).slice(2)}.yaml`)
    await writeFile(config, `targets:\n  shop:\n${body.replace(/^/gm, '    ')}\n`)
    const env = {XDG_CONFIG_HOME: dir, XDG_DATA_HOME: dir, XDG_STATE_HOME: dir, XDG_CACHE_HOME: dir, DBGATE_CONFIG: undefined, SOCKET_PG_PASSWORD: server.password}
    return {config, r: await run('node', [BIN, 'connect', 'shop', '--config', config, '--', 'psql', '-X', '-At', '-c', 'select inet_server_addr() is null, count(*) from items'], {cwd: dir, env})}
  }

  it('reaches the server over the socket, guarded as over TCP', async () => {
    const t = await openPipelineTunnel({host: server.dataDir, port: server.port, user: server.user, password: server.password, database: 'postgres', url: ''})
    try {
      const c = await t.client()
      // The server has no address for a session that came over its unix socket.
      expect((await c.query('select inet_server_addr() is null as over_socket')).rows[0].over_socket).toBe(true)
      await expect(c.query('delete from items')).rejects.toMatchObject({code: '42501'})
      expect((await c.query('select count(*)::int as n from items')).rows[0].n).toBe(2)
    } finally {
      await t.close()
    }
  })

  it('dbgate connect runs psql through it, tls: prefer included (the server offers none there, and is not asked)', async () => {
    for (const tls of ['tls: disable', 'tls: prefer']) {
      const {r} = await connect(target(server.port, tls))
      expect(r.stderr, tls).not.toMatch(/error/i)
      expect(r.stdout.trim(), tls).toBe('t|2')
    }
  })

  it('names the socket file it did not find, and the keys that make its name', async () => {
    const port = server.port === 65535 ? 65534 : server.port + 1
    const {config, r} = await connect(target(port, 'tls: disable'))
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`Cannot reach the database of target shop: there is no unix socket ${server.dataDir}/.s.PGSQL.${port}.`)
    expect(r.stderr).toContain(`Check targets.shop.host (the socket's directory, as unix_socket_directories names it) and targets.shop.port (it names the socket file) in ${config}`)
  })

  it('refuses tls: require or verify-full for a socket, which carries no TLS, naming the key', async () => {
    for (const tls of ['require', 'verify-full']) {
      const {config, r} = await connect(target(server.port, `tls: ${tls}`))
      expect(r.code, tls).not.toBe(0)
      expect(r.stderr, tls).toContain(`${path.basename(config)}:`)
      expect(r.stderr, tls).toContain(`targets.shop.tls: host ${server.dataDir} is a unix socket directory, which carries no TLS (as with libpq), but tls is ${tls}`)
      expect(r.stdout, tls).toBe('')
    }
  })
})
