/**
 * Sealing a reviewer's proof to one waiting tunnel: ephemeral-static X25519, HKDF-SHA256, then
 * AES-256-GCM. The tunnel's private key never leaves its memory and is dropped when the request
 * settles, so the box in the bucket is unreadable to everyone else, then and later. The request id
 * and digest are bound in as associated data, so a box cannot be moved to another request.
 */
import {createCipheriv, createDecipheriv, createHash, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject} from 'node:crypto'
import type {SealedBox} from './types.js'

const INFO = Buffer.from('dbgate approval decision v1')

export interface SealKeyPair {
  publicKey: string
  privateKey: KeyObject
}

export function generateSealKey(): SealKeyPair {
  const {publicKey, privateKey} = generateKeyPairSync('x25519')
  return {publicKey: publicKey.export({type: 'spki', format: 'der'}).toString('base64'), privateKey}
}

function importPublic(b64: string): KeyObject {
  const key = createPublicKey({key: Buffer.from(b64, 'base64'), format: 'der', type: 'spki'})
  if (key.asymmetricKeyType !== 'x25519') throw new Error('not an X25519 public key')
  return key
}

function deriveKey(shared: Buffer, salt: string): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.from(salt), INFO, 32))
}

function aad(requestId: string, requestDigest: string): Buffer {
  return createHash('sha256').update(`${requestId}\n${requestDigest}`).digest()
}

export function seal(recipient: string, plaintext: string, binding: {requestId: string; requestDigest: string}): SealedBox {
  const eph = generateKeyPairSync('x25519')
  const shared = diffieHellman({privateKey: eph.privateKey, publicKey: importPublic(recipient)})
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', deriveKey(shared, binding.requestId), iv)
  cipher.setAAD(aad(binding.requestId, binding.requestDigest))
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return {
    alg: 'X25519-HKDF-SHA256-A256GCM',
    epk: eph.publicKey.export({type: 'spki', format: 'der'}).toString('base64'),
    iv: iv.toString('base64'),
    ct: ct.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
  }
}

/** Throws when the box was not sealed to `privateKey` for this request, or was altered. */
export function open(privateKey: KeyObject, box: SealedBox, binding: {requestId: string; requestDigest: string}): string {
  if (box?.alg !== 'X25519-HKDF-SHA256-A256GCM') throw new Error('unknown proof algorithm')
  const shared = diffieHellman({privateKey, publicKey: importPublic(box.epk)})
  const decipher = createDecipheriv('aes-256-gcm', deriveKey(shared, binding.requestId), Buffer.from(box.iv, 'base64'))
  decipher.setAAD(aad(binding.requestId, binding.requestDigest))
  decipher.setAuthTag(Buffer.from(box.tag, 'base64'))
  return Buffer.concat([decipher.update(Buffer.from(box.ct, 'base64')), decipher.final()]).toString('utf8')
}
