import {X509Certificate} from 'node:crypto'
import {mkdtemp, readFile, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {createCertificateAuthority, ipBytes, issueServerCertificate, writeServerPki, type ServerPkiFiles} from '../../src/util/tls-certs.js'

/** Opens a TLS connection the way a verifying client does; resolves with the handshake's verdict. */
function handshake(server: tls.Server, opts: {ca: string; servername?: string; host?: string}): Promise<string> {
  const {port} = server.address() as {port: number}
  return new Promise((resolve) => {
    const s = tls.connect({host: opts.host ?? '127.0.0.1', port, ca: opts.ca, ...(opts.servername ? {servername: opts.servername} : {})})
    s.once('secureConnect', () => {
      s.end()
      resolve('ok')
    })
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message))
  })
}

describe('certificates made without openssl', () => {
  let dir: string
  let files: ServerPkiFiles
  let server: tls.Server

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'dbgate-certs-'))
    files = await writeServerPki(dir, ['localhost', '127.0.0.1', '::1'])
    server = tls.createServer({cert: await readFile(files.cert), key: await readFile(files.key)}, (s) => s.end())
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  })
  afterAll(async () => {
    await new Promise((r) => server?.close(r))
    await rm(dir, {recursive: true, force: true})
  })

  it('issues a server certificate that the CA signed, for exactly the names asked for', async () => {
    const ca = new X509Certificate(await readFile(files.ca))
    const leaf = new X509Certificate(await readFile(files.cert))
    expect(ca.ca).toBe(true)
    expect(leaf.ca).toBe(false)
    expect(leaf.checkIssued(ca)).toBe(true)
    expect(leaf.verify(ca.publicKey)).toBe(true)
    expect(leaf.checkHost('localhost')).toBe('localhost')
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1')
    expect(leaf.checkIP('::1')).toBe('::1')
    expect(leaf.checkHost('gw.example.com')).toBeUndefined()
    expect(leaf.checkIP('127.0.0.2')).toBeUndefined()
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1'])
    expect((await stat(files.key)).mode & 0o777).toBe(0o600)
  })

  it('passes a verifying TLS client, by IP address and by host name', async () => {
    const ca = await readFile(files.ca, 'utf8')
    expect(await handshake(server, {ca})).toBe('ok')
    expect(await handshake(server, {ca, servername: 'localhost'})).toBe('ok')
  })

  it('fails verification against another CA, and for a name it was not issued for', async () => {
    const other = createCertificateAuthority('another CA')
    expect(await handshake(server, {ca: other.cert})).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT_SIGNATURE_FAILURE/)
    expect(await handshake(server, {ca: await readFile(files.ca, 'utf8'), servername: 'gw.example.com'})).toBe('ERR_TLS_CERT_ALTNAME_INVALID')
  })

  it('refuses to issue a certificate for nobody', () => {
    expect(() => issueServerCertificate(createCertificateAuthority('x'), [])).toThrow(/at least one host/)
  })

  it('encodes IPv6 addresses, compressed and with an IPv4 tail', () => {
    expect(ipBytes('::1').toString('hex')).toBe('00000000000000000000000000000001')
    expect(ipBytes('fe80::1:2').toString('hex')).toBe('fe800000000000000000000000010002')
    expect(ipBytes('::ffff:10.0.0.1').toString('hex')).toBe('00000000000000000000ffff0a000001')
  })
})
