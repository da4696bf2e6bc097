import {createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual} from 'node:crypto'

/** SCRAM-SHA-256 (RFC 5802/7677) as PostgreSQL uses it: the client side for the upstream, the server side for the tunnel secret. */

export class ScramError extends Error {
  override name = 'ScramError'
}

const hmac = (key: Buffer, data: string): Buffer => createHmac('sha256', key).update(data).digest()
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest()
const xor = (a: Buffer, b: Buffer): Buffer => {
  const out = Buffer.allocUnsafe(a.length)
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!
  return out
}

function parseAttributes(msg: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const part of msg.split(',')) {
    const eq = part.indexOf('=')
    if (eq !== 1) throw new ScramError(`malformed SCRAM attribute ${JSON.stringify(part.slice(0, 20))}`)
    out.set(part[0]!, part.slice(2))
  }
  return out
}

function saltedPassword(password: string, salt: Buffer, iterations: number): Buffer {
  // PostgreSQL applies SASLprep; NFKC normalisation is its core and leaves ASCII secrets unchanged.
  return pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256')
}

/** The client half, used towards the upstream server. */
export class ScramClient {
  private readonly clientNonce = randomBytes(18).toString('base64')
  private clientFirstBare = ''
  private expectedServerSignature: Buffer | undefined

  constructor(private readonly password: string) {}

  firstMessage(): string {
    this.clientFirstBare = `n=*,r=${this.clientNonce}`
    return `n,,${this.clientFirstBare}`
  }

  finalMessage(serverFirst: string): string {
    const attrs = parseAttributes(serverFirst)
    const nonce = attrs.get('r')
    const salt = attrs.get('s')
    const iterations = Number(attrs.get('i'))
    if (!nonce || !salt || !Number.isInteger(iterations) || iterations < 1) throw new ScramError('malformed SCRAM server-first message')
    if (!nonce.startsWith(this.clientNonce)) throw new ScramError('SCRAM server nonce does not extend the client nonce')
    const salted = saltedPassword(this.password, Buffer.from(salt, 'base64'), iterations)
    const clientKey = hmac(salted, 'Client Key')
    const withoutProof = `c=biws,r=${nonce}`
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`
    const proof = xor(clientKey, hmac(sha256(clientKey), authMessage))
    this.expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage)
    return `${withoutProof},p=${proof.toString('base64')}`
  }

  /** Checks the server proved it knows the password too (mutual authentication). */
  verifyFinal(serverFinal: string): void {
    const attrs = parseAttributes(serverFinal)
    if (attrs.has('e')) throw new ScramError(`SCRAM authentication failed: ${attrs.get('e')}`)
    const v = attrs.get('v')
    if (!v || !this.expectedServerSignature) throw new ScramError('malformed SCRAM server-final message')
    const got = Buffer.from(v, 'base64')
    if (got.length !== this.expectedServerSignature.length || !timingSafeEqual(got, this.expectedServerSignature)) {
      throw new ScramError('the upstream server failed to prove it knows the password (SCRAM server signature mismatch)')
    }
  }
}

/** A stored verifier: what a server keeps instead of the secret. */
export interface ScramVerifier {
  salt: Buffer
  iterations: number
  storedKey: Buffer
  serverKey: Buffer
}

export function makeScramVerifier(secret: string, iterations = 4096): ScramVerifier {
  const salt = randomBytes(16)
  const salted = saltedPassword(secret, salt, iterations)
  return {salt, iterations, storedKey: sha256(hmac(salted, 'Client Key')), serverKey: hmac(salted, 'Server Key')}
}

/** The server half, used by the tunnel to check its per-tunnel secret without it crossing the wire. */
export class ScramServer {
  private clientFirstBare = ''
  private serverFirst = ''
  private nonce = ''
  private gs2Header = ''

  constructor(private readonly verifier: ScramVerifier) {}

  /** Takes client-first, returns server-first. */
  start(clientFirst: string): string {
    const m = /^([ny]|p=[^,]*),([^,]*),(.*)$/s.exec(clientFirst)
    if (!m) throw new ScramError('malformed SCRAM client-first message')
    if (m[1]!.startsWith('p=')) throw new ScramError('SCRAM channel binding was requested but the tunnel does not offer it')
    this.gs2Header = `${m[1]},${m[2]},`
    this.clientFirstBare = m[3]!
    const clientNonce = parseAttributes(this.clientFirstBare).get('r')
    if (!clientNonce) throw new ScramError('SCRAM client-first message has no nonce')
    this.nonce = clientNonce + randomBytes(18).toString('base64')
    this.serverFirst = `r=${this.nonce},s=${this.verifier.salt.toString('base64')},i=${this.verifier.iterations}`
    return this.serverFirst
  }

  /** Takes client-final; returns server-final, or throws when the proof is wrong. */
  finish(clientFinal: string): string {
    const attrs = parseAttributes(clientFinal)
    const proofB64 = attrs.get('p')
    if (attrs.get('r') !== this.nonce || !proofB64) throw new ScramError('malformed SCRAM client-final message')
    if (attrs.get('c') !== Buffer.from(this.gs2Header).toString('base64')) throw new ScramError('SCRAM channel binding data mismatch')
    const withoutProof = clientFinal.slice(0, clientFinal.lastIndexOf(',p='))
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`
    const proof = Buffer.from(proofB64, 'base64')
    if (proof.length !== 32) throw new ScramError('wrong password')
    const clientKey = xor(proof, hmac(this.verifier.storedKey, authMessage))
    if (!timingSafeEqual(sha256(clientKey), this.verifier.storedKey)) throw new ScramError('wrong password')
    return `v=${hmac(this.verifier.serverKey, authMessage).toString('base64')}`
  }
}

export function md5Password(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5').update(password + user).digest('hex')
  return 'md5' + createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex')
}
