import {execFileSync} from 'node:child_process'
import {appendFile, chmod, chown, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import pg from 'pg'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {startEmbeddedPg, type EmbeddedPg} from '../../src/dev/embedded-pg.js'
import type {UpstreamTarget} from '../../src/proxy/upstream.js'
import {Tunnel} from '../../src/proxy/tunnel.js'

/** Its own server, because these tests restart it and change how it authenticates. */
describe('the upstream side: TLS, authentication methods, restarts', () => {
  let server: EmbeddedPg
  let ca: string
  const tunnels: Tunnel[] = []

  beforeAll(async () => {
    server = await startEmbeddedPg({
      settings: {ssl: 'on', ssl_cert_file: 'server.crt', ssl_key_file: 'server.key'},
      prepare: async (dataDir) => {
        // A self-signed certificate valid for "localhost" only, so verify-full against 127.0.0.1 must fail.
        execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-keyout', path.join(dataDir, 'server.key'), '-out', path.join(dataDir, 'server.crt')], {stdio: 'ignore'})
        if (process.getuid?.() === 0) {
          const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim())
          const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim())
          await chown(path.join(dataDir, 'server.key'), uid, gid)
          await chown(path.join(dataDir, 'server.crt'), uid, gid)
        }
        await chmod(path.join(dataDir, 'server.key'), 0o600)
        const hba = path.join(dataDir, 'pg_hba.conf')
        const original = await readFile(hba, 'utf8')
        await writeFile(hba, `host all md5_user 127.0.0.1/32 md5\nhost all clear_user 127.0.0.1/32 password\nhostnossl all tls_only 127.0.0.1/32 reject\n${original}`)
        await appendFile(path.join(dataDir, 'postgresql.conf'), '\n')
      },
    })
    ca = await readFile(path.join(server.dataDir, 'server.crt'), 'utf8')
    const admin = new pg.Client({connectionString: server.url()})
    await admin.connect()
    await admin.query("set password_encryption = 'md5'; create role md5_user login password 'md5-pass'")
    await admin.query("set password_encryption = 'scram-sha-256'; create role clear_user login password 'clear-pass'; create role tls_only login password 'tls-pass'")
    await admin.end()
  })
  afterAll(async () => {
    await Promise.all(tunnels.map((t) => t.close(500)))
    await server.stop()
  })

  async function tunnelTo(target: Partial<UpstreamTarget>) {
    const tunnel = new Tunnel({
      target: {host: '127.0.0.1', port: server.port, database: 'postgres', user: server.user, password: server.password, tls: 'disable', ...target},
      listen: {kind: 'tcp', host: '127.0.0.1', port: 0},
    })
    tunnels.push(tunnel)
    const addr = await tunnel.listen()
    return {tunnel, config: {host: '127.0.0.1', port: addr.port, user: 'me', password: tunnel.secret, database: 'postgres'}}
  }

  async function query(config: pg.ClientConfig, sql: string) {
    const c = new pg.Client(config)
    c.on('error', () => {})
    await c.connect()
    try {
      return (await c.query(sql)).rows
    } finally {
      await c.end()
    }
  }

  it('logs in upstream with SCRAM-SHA-256, MD5 and cleartext passwords', async () => {
    const scram = await tunnelTo({})
    expect(await query(scram.config, 'select current_user as u')).toEqual([{u: server.user}])
    const md5 = await tunnelTo({user: 'md5_user', password: 'md5-pass'})
    expect(await query(md5.config, 'select current_user as u')).toEqual([{u: 'md5_user'}])
    const clear = await tunnelTo({user: 'clear_user', password: 'clear-pass'})
    expect(await query(clear.config, 'select current_user as u')).toEqual([{u: 'clear_user'}])
  })

  it('sends a password in clear only to a server whose certificate it verified', async () => {
    // ::ffff:127.0.0.1 is this machine, written as a name dbgate does not count as loopback: a remote server, as far as the rule goes.
    const remote = '::ffff:127.0.0.1'
    const refused = /asked for the password in clear, and its TLS certificate was not verified .*nothing was sent\. Set tls: verify-full with tlsCa/
    for (const tls of ['require', 'prefer'] as const) {
      const unverified = await tunnelTo({host: remote, user: 'clear_user', password: 'clear-pass', tls})
      await expect(query(unverified.config, 'select 1'), tls).rejects.toMatchObject({code: '28000', message: refused})
    }
    const plain = await tunnelTo({host: remote, user: 'clear_user', password: 'clear-pass', tls: 'disable'})
    await expect(query(plain.config, 'select 1')).rejects.toMatchObject({code: '28000', message: /asked for the password in clear over an unencrypted connection; nothing was sent/})
    // The chain checked against the server's CA (require with tlsCa, as libpq's verify-ca): it goes.
    const verified = await tunnelTo({host: remote, user: 'clear_user', password: 'clear-pass', tls: 'require', tlsCa: ca})
    expect(await query(verified.config, 'select current_user as u')).toEqual([{u: 'clear_user'}])
    // SCRAM never sends the password, verified or not.
    const scram = await tunnelTo({host: remote, tls: 'require'})
    expect(await query(scram.config, 'select current_user as u')).toEqual([{u: server.user}])
  })

  it('encrypts the upstream connection when TLS is required, and verifies the certificate in verify-full', async () => {
    const required = await tunnelTo({user: 'tls_only', password: 'tls-pass', tls: 'require'})
    expect(await query(required.config, 'select ssl from pg_stat_ssl where pid = pg_backend_pid()')).toEqual([{ssl: true}])

    const plain = await tunnelTo({user: 'tls_only', password: 'tls-pass', tls: 'disable'})
    await expect(query(plain.config, 'select 1')).rejects.toMatchObject({message: /pg_hba\.conf rejects connection/})

    const full = await tunnelTo({host: 'localhost', tls: 'verify-full', tlsCa: ca})
    expect(await query(full.config, 'select ssl from pg_stat_ssl where pid = pg_backend_pid()')).toEqual([{ssl: true}])

    const wrongName = await tunnelTo({host: '127.0.0.1', tls: 'verify-full', tlsCa: ca})
    await expect(query(wrongName.config, 'select 1')).rejects.toMatchObject({code: '08006', message: /TLS to the upstream .* failed: .*(IP|altnames|127\.0\.0\.1)/})

    const untrusted = await tunnelTo({host: 'localhost', tls: 'verify-full'})
    await expect(query(untrusted.config, 'select 1')).rejects.toMatchObject({message: /self.signed certificate/})

    const preferred = await tunnelTo({tls: 'prefer'})
    expect(await query(preferred.config, 'select ssl from pg_stat_ssl where pid = pg_backend_pid()')).toEqual([{ssl: true}])
  })

  it('survives an upstream restart: the open session ends with a clear error, new ones work', async () => {
    const {config} = await tunnelTo({})
    const c = new pg.Client(config)
    const errors: Error[] = []
    c.on('error', (e) => errors.push(e))
    await c.connect()
    await c.query('select 1')
    await server.restart()
    const failed = await c.query('select 1').catch((e: Error) => e)
    expect(failed).toBeInstanceOf(Error)
    const messages = [...errors, failed as Error].map((e) => e.message).join('\n')
    expect(messages).toMatch(/terminating connection due to administrator command|upstream database was lost|Connection terminated/)
    expect(await query(config, 'select 42 as answer')).toEqual([{answer: 42}])
  })
})
