/**
 * A gateway's signature over a request it filed (its seal key included), so that a reviewer seals
 * their sign-in token only to a key a gateway holds, and reads the request as the gateway wrote it.
 *
 * Why: the decision carries the reviewer's fresh ID token, sealed to the request's `sealKey`. The
 * bucket cannot tell who wrote a request, so anyone who can write `approvals/` could file one with
 * a key of their own, wait for a reviewer to decide it (approve or deny), and open the box: a bearer
 * token of the reviewer's, good for the gateway's sign-in until it expires.
 *
 * The signature is made with the private key of the gateway's TLS certificate. The reviewer checks
 * it against the certificate the gateway presents to them over verify-full TLS, against the CA in
 * their own configuration: the same proof that lets them send that gateway their token as a
 * password. Replicas behind one address present the same certificate, so a request filed on one
 * replica verifies against whichever replica the reviewer reaches.
 */
import {createHash, sign, verify, type KeyObject, type X509Certificate} from 'node:crypto'
import {canonicalJson} from '../util/canonical-json.js'
import {visible} from '../util/visible.js'
import type {ApprovalRequest, GatewaySignature} from './types.js'

const CONTEXT = 'dbgate approval request v1'

/** A request as its gateway signs it: every field but the signature. */
export type UnsignedRequest = Omit<ApprovalRequest, 'gatewaySignature'>

/**
 * What is signed: the SHA-256 of the request's canonical JSON without its signature, under a label
 * no other dbgate signature uses. The id and the seal key are in it, so neither can be swapped, and
 * so is everything the reviewer reads.
 */
function message(request: UnsignedRequest): Buffer {
  const {gatewaySignature: _signature, ...rest} = request as ApprovalRequest
  return Buffer.from(`${CONTEXT}\n${createHash('sha256').update(canonicalJson(rest)).digest('hex')}`, 'utf8')
}

/** RSA and ECDSA keys sign a SHA-256 digest; Ed25519 and Ed448 take the message itself. */
function digestFor(key: KeyObject): string | null {
  return key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448' ? null : 'sha256'
}

/** The SHA-256 of a certificate's DER, as hex: how a signature names the certificate it was made with. */
export function certificateSha256(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('hex')
}

/** The gateway's side: signs the request it is about to file with its TLS private key. */
export function signRequest(tls: {key: KeyObject; cert: X509Certificate}, request: UnsignedRequest): GatewaySignature {
  return {alg: 'tls-certificate-key', cert: certificateSha256(tls.cert), signature: sign(digestFor(tls.key), message(request), tls.key).toString('base64')}
}

export type SignatureCheck = {ok: true} | {ok: false; why: 'none' | 'other-certificate' | 'bad-signature'; problem: string}

/**
 * The reviewer's side: whether `request` was signed, as it reads now, by the holder of `cert`'s key
 * (the certificate their gateway presented). Anything else is refused before a token is sealed.
 */
export function checkGatewaySignature(request: ApprovalRequest, cert: X509Certificate): SignatureCheck {
  const v = request.gatewaySignature
  if (!v) return {ok: false, why: 'none', problem: 'it carries no gateway signature'}
  const presented = certificateSha256(cert)
  if (v.alg !== 'tls-certificate-key' || v.cert !== presented) {
    // The named certificate is whatever the request's writer put there: printed, never obeyed.
    return {ok: false, why: 'other-certificate', problem: `it was signed with a certificate (sha256 ${visible(v.cert.slice(0, 16))}…) other than the one your gateway presents (sha256 ${presented.slice(0, 16)}…)`}
  }
  let good = false
  try {
    good = verify(digestFor(cert.publicKey), message(request), cert.publicKey, Buffer.from(v.signature, 'base64'))
  } catch {
    good = false
  }
  return good ? {ok: true} : {ok: false, why: 'bad-signature', problem: "its gateway signature does not match it (changed after the gateway filed it, or copied from another request)"}
}
