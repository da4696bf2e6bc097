/**
 * A certificate authority and server certificates made in-process (EC P-256, ECDSA with SHA-256),
 * so `dbgate demo`, the bench and the tests can serve TLS on a machine without the openssl CLI.
 * Only what a TLS server certificate needs is encoded (RFC 5280): a version 3 certificate with a
 * common name, basic constraints, key usage, extended key usage, subject alternative names and
 * key identifiers. Meant for throwaway certificates; a real gateway uses its organisation's CA.
 */
import {createHash, generateKeyPairSync, randomBytes, sign, type KeyObject} from 'node:crypto'
import {chmod, writeFile} from 'node:fs/promises'
import {isIP} from 'node:net'
import path from 'node:path'

export interface PemPair {
  /** PEM certificate. */
  cert: string
  /** PEM PKCS #8 private key. */
  key: string
}

export interface CertificateAuthority extends PemPair {
  readonly commonName: string
  /** @internal what issuing needs; not serialised */
  readonly signer: {privateKey: KeyObject; keyId: Buffer}
}

export interface ValidityOptions {
  /** Days the certificate is valid from now (default 2). */
  validDays?: number
  now?: Date
}

// ---- DER, just the types a certificate uses ----

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

const tlv = (tag: number, ...content: Buffer[]): Buffer => {
  const body = Buffer.concat(content)
  return Buffer.concat([Buffer.from([tag]), length(body.length), body])
}
const seq = (...items: Buffer[]) => tlv(0x30, ...items)
const set = (...items: Buffer[]) => tlv(0x31, ...items)
const explicit = (n: number, ...items: Buffer[]) => tlv(0xa0 + n, ...items)
const octets = (b: Buffer) => tlv(0x04, b)
const bits = (b: Buffer, unused = 0) => tlv(0x03, Buffer.from([unused]), b)
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0]))
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'))

/** A non-negative INTEGER from big-endian bytes (a leading zero keeps a high bit from reading as negative). */
function uint(b: Buffer): Buffer {
  let i = 0
  while (i < b.length - 1 && b[i] === 0) i++
  const trimmed = b.subarray(i)
  return tlv(0x02, trimmed[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed)
}

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number)
  const out = [a! * 40 + b!]
  for (const n of rest) {
    const chunk = [n & 0x7f]
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80)
    out.push(...chunk)
  }
  return tlv(0x06, Buffer.from(out))
}

/** UTCTime through 2049, GeneralizedTime after, as RFC 5280 4.1.2.5 requires. */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:T]/g, '')
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2), 'ascii')) : tlv(0x18, Buffer.from(iso, 'ascii'))
}

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
}

const name = (cn: string) => seq(set(seq(oid(OID.commonName), utf8(cn))))
const extension = (id: string, critical: boolean, value: Buffer) => seq(oid(id), ...(critical ? [bool(true)] : []), octets(value))

/** The address's bytes for a subjectAltName iPAddress entry. */
export function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number))
  if (isIP(ip) !== 6) throw new Error(`${ip} is not an IP address`)
  let text = ip.replace(/%.*$/, '')
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4) {
    const b = ipBytes(v4[1]!)
    text = text.slice(0, -v4[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`
  }
  const [head, tail] = text.split('::') as [string, string | undefined]
  const words = (s: string | undefined) => (s ? s.split(':').map((w) => parseInt(w, 16)) : [])
  const front = words(head)
  const back = words(tail)
  const all = tail === undefined ? front : [...front, ...Array<number>(8 - front.length - back.length).fill(0), ...back]
  const out = Buffer.alloc(16)
  all.forEach((w, i) => out.writeUInt16BE(w, i * 2))
  return out
}

function subjectAltNames(hosts: readonly string[]): Buffer {
  // GeneralName: dNSName [2] and iPAddress [7], both implicitly tagged.
  return seq(...hosts.map((h) => (isIP(h) ? tlv(0x87, ipBytes(h)) : tlv(0x82, Buffer.from(h, 'ascii')))))
}

/** keyUsage as a DER BIT STRING: bit 0 is the first byte's high bit; trailing zero bits are not counted. */
function keyUsage(bitNumbers: number[]): Buffer {
  let byte = 0
  for (const n of bitNumbers) byte |= 0x80 >> n
  let unused = 0
  while (unused < 7 && !(byte & (1 << unused))) unused++
  return bits(Buffer.from([byte]), unused)
}

const KEY_USAGE = {digitalSignature: 0, keyCertSign: 5, cRLSign: 6}

/** The key a server certificate certifies: P-256 by default; RSA and Ed25519 for what other CAs issue. */
export type ServerKeyType = 'ec' | 'rsa' | 'ed25519'

function newKey(type: ServerKeyType = 'ec'): {privateKey: KeyObject; spki: Buffer; keyId: Buffer} {
  const {privateKey, publicKey} = type === 'rsa' ? generateKeyPairSync('rsa', {modulusLength: 2048}) : type === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', {namedCurve: 'P-256'})
  const spki = publicKey.export({type: 'spki', format: 'der'})
  // RFC 5280 4.2.1.2 method 1 reads the SHA-1 of the subjectPublicKey bits; any stable digest serves.
  return {privateKey, spki, keyId: createHash('sha1').update(spki).digest()}
}

function certificate(opts: {subject: string; issuer: string; spki: Buffer; extensions: Buffer[]; signer: KeyObject} & ValidityOptions): string {
  const now = opts.now ?? new Date()
  const serial = randomBytes(16)
  serial[0] = (serial[0]! & 0x7f) | 0x40
  const algorithm = seq(oid(OID.ecdsaWithSha256))
  const tbs = seq(
    explicit(0, uint(Buffer.from([2]))),
    uint(serial),
    algorithm,
    name(opts.issuer),
    // An hour back, for clocks a little behind this one.
    seq(time(new Date(now.getTime() - 3600_000)), time(new Date(now.getTime() + (opts.validDays ?? 2) * 86_400_000))),
    name(opts.subject),
    opts.spki,
    explicit(3, seq(...opts.extensions)),
  )
  const der = seq(tbs, algorithm, bits(sign('sha256', tbs, opts.signer)))
  return `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE-----\n`
}

const pkcs8 = (k: KeyObject) => k.export({type: 'pkcs8', format: 'pem'}) as string

/** A CA certificate and its key, able to issue server certificates. */
export function createCertificateAuthority(commonName: string, opts: ValidityOptions = {}): CertificateAuthority {
  const k = newKey()
  const cert = certificate({
    ...opts,
    subject: commonName,
    issuer: commonName,
    spki: k.spki,
    signer: k.privateKey,
    extensions: [
      extension(OID.basicConstraints, true, seq(bool(true))),
      extension(OID.keyUsage, true, keyUsage([KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign])),
      extension(OID.subjectKeyIdentifier, false, octets(k.keyId)),
    ],
  })
  return {cert, key: pkcs8(k.privateKey), commonName, signer: {privateKey: k.privateKey, keyId: k.keyId}}
}

/** A server certificate signed by `ca` for the given DNS names and IP addresses; the first names it. */
export function issueServerCertificate(ca: CertificateAuthority, hosts: readonly string[], opts: ValidityOptions & {keyType?: ServerKeyType} = {}): PemPair {
  if (hosts.length === 0) throw new Error('a server certificate needs at least one host name or IP address')
  const k = newKey(opts.keyType)
  const cert = certificate({
    ...opts,
    subject: hosts[0]!,
    issuer: ca.commonName,
    spki: k.spki,
    signer: ca.signer.privateKey,
    extensions: [
      extension(OID.basicConstraints, true, seq()),
      extension(OID.keyUsage, true, keyUsage([KEY_USAGE.digitalSignature])),
      extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
      extension(OID.subjectAltName, false, subjectAltNames(hosts)),
      extension(OID.subjectKeyIdentifier, false, octets(k.keyId)),
      extension(OID.authorityKeyIdentifier, false, seq(tlv(0x80, ca.signer.keyId))),
    ],
  })
  return {cert, key: pkcs8(k.privateKey)}
}

export interface ServerPkiFiles {
  /** The CA certificate clients trust (sslrootcert, gateway.ca). */
  ca: string
  cert: string
  /** The server's private key, mode 0600. */
  key: string
}

/** Writes a fresh CA (`ca.pem`) and a server certificate for `hosts` (`server.crt`, `server.key`) into `dir`. */
export async function writeServerPki(dir: string, hosts: readonly string[], opts: ValidityOptions & {caName?: string} = {}): Promise<ServerPkiFiles> {
  const ca = createCertificateAuthority(opts.caName ?? 'dbgate throwaway CA', opts)
  const server = issueServerCertificate(ca, hosts, opts)
  const files = {ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key')}
  await writeFile(files.ca, ca.cert)
  await writeFile(files.cert, server.cert)
  await writeFile(files.key, server.key, {mode: 0o600})
  await chmod(files.key, 0o600)
  return files
}
