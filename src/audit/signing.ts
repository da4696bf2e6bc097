import {createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject} from 'node:crypto'
import {constants as fsc} from 'node:fs'
import {chmod, mkdir, open, readFile, stat, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {isBucketError, OBJECT_EXISTS, type Bucket} from '../bucket/index.js'
import type {Identity} from '../identity/types.js'
import {keyDir} from '../util/paths.js'
import {sha256hex, signatureMessage, type Signer} from './chain.js'

/** Per-installation Ed25519 key: private half stays in the user's data dir, public half goes to the bucket. */
export interface InstallationKey extends Signer {
  publicKeyPem: string
  privateKey: KeyObject
  /** Set when the key is a gateway's (its key directory says so): it is published as the gateway's, never bound to a person. */
  gateway?: GatewaySigner
}

/** A gateway that signs the sessions of everyone it serves. */
export interface GatewaySigner {
  kind: 'gateway'
  name: string
}

/** Marks a key directory as a gateway's: its key then speaks for the gateway (see `publishKey`). */
export const GATEWAY_MARKER = 'gateway.json'

/** Who a published key speaks for: the identity fields an auditor needs, never a token or its hash. */
export interface KeyBinding {
  subject: string
  email?: string
  issuer: string
  kind: Identity['kind']
  boundAt: string
}

/** `keys/<key-id>.json` in the bucket. */
export interface PublishedKey {
  v: 1
  keyId: string
  alg: 'ed25519'
  publicKey: string
  host: string
  createdAt: string
  /** Current binding; earlier ones stay in `history`, so old sessions still verify after a re-login as someone else. */
  identity: KeyBinding
  history: KeyBinding[]
  /**
   * Present on a gateway's key: it signs sessions of any identity the gateway verified, and
   * `identity` names the gateway itself. Auditors decide which gateway keys they trust.
   */
  signer?: GatewaySigner
}

export type KeyRing = Map<string, PublishedKey>

export function defaultKeyDir(env: NodeJS.ProcessEnv = process.env): string {
  return keyDir(env)
}

export function keyIdOf(publicKey: KeyObject): string {
  return sha256hex(publicKey.export({type: 'spki', format: 'der'})).slice(0, 32)
}

/**
 * Loads the installation key, creating it on first use. Creation is O_EXCL so two tunnels starting
 * at once agree on one key; the loser reads the winner's.
 */
export async function loadOrCreateInstallationKey(dir = defaultKeyDir()): Promise<InstallationKey> {
  await mkdir(dir, {recursive: true, mode: 0o700})
  const path = join(dir, 'installation-ed25519.pem')
  let pem: string
  try {
    const fh = await open(path, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o600)
    const {privateKey} = generateKeyPairSync('ed25519')
    pem = privateKey.export({type: 'pkcs8', format: 'pem'}).toString()
    try {
      await fh.writeFile(pem)
      await fh.sync()
    } finally {
      await fh.close()
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    pem = await readExistingKey(path)
  }
  const st = await stat(path)
  if ((st.mode & 0o077) !== 0) await chmod(path, 0o600)
  const key = fromPrivatePem(pem)
  const gateway = await readGatewayMarker(dir)
  return gateway ? {...key, gateway} : key
}

async function readGatewayMarker(dir: string): Promise<GatewaySigner | undefined> {
  let text: string
  try {
    text = await readFile(join(dir, GATEWAY_MARKER), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  const doc = JSON.parse(text) as {name?: unknown}
  if (typeof doc.name !== 'string' || doc.name === '') throw new Error(`${join(dir, GATEWAY_MARKER)} names no gateway; remove it or write {"name": "<gateway name>"}`)
  return {kind: 'gateway', name: doc.name}
}

/**
 * Makes `dir` a gateway's key directory: its key (created there, or the configured `pem`) is
 * published as the gateway's and signs every session the gateway records.
 */
export async function prepareGatewayKeyDir(dir: string, name: string, pem?: string): Promise<void> {
  await mkdir(dir, {recursive: true, mode: 0o700})
  await writeFile(join(dir, GATEWAY_MARKER), JSON.stringify({name}) + '\n', {mode: 0o600})
  if (pem === undefined) return
  const file = join(dir, 'installation-ed25519.pem')
  const configured = fromPrivatePem(pem)
  const existing = await readFile(file, 'utf8').then(fromPrivatePem, () => undefined)
  if (existing?.keyId === configured.keyId) return
  await writeFile(file, configured.privateKey.export({type: 'pkcs8', format: 'pem'}).toString(), {mode: 0o600})
  await chmod(file, 0o600)
}

async function readExistingKey(path: string): Promise<string> {
  // The creator may be between open and write; a few short waits cover that window.
  for (let i = 0; i < 50; i++) {
    const pem = await readFile(path, 'utf8')
    if (pem.includes('END PRIVATE KEY')) return pem
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`installation key ${path} is empty or corrupt; move it aside to generate a new one`)
}

export function fromPrivatePem(pem: string): InstallationKey {
  const privateKey = createPrivateKey(pem)
  const publicKey = createPublicKey(privateKey)
  const keyId = keyIdOf(publicKey)
  return {
    keyId,
    privateKey,
    publicKeyPem: publicKey.export({type: 'spki', format: 'pem'}).toString(),
    sign: (message: Buffer) => sign(null, message, privateKey).toString('base64'),
  }
}

export function keyObjectKey(keyId: string): string {
  return `keys/${keyId}.json`
}

/**
 * Publishes the installation's public key bound to `identity` (called by `dbgate login`). Creating
 * is exclusive; re-publishing for the same subject is a no-op, and a new subject becomes the current
 * binding with the old one kept in `history`.
 */
export async function publishKey(bucket: Bucket, identity: Identity, key: Pick<InstallationKey, 'keyId' | 'publicKeyPem' | 'gateway'>, now = new Date()): Promise<PublishedKey> {
  // A gateway's key speaks for the gateway whoever the session is; it is never rebound to a person.
  if (key.gateway) return publishGatewayKey(bucket, key.gateway, key, now)
  const binding: KeyBinding = {subject: identity.subject, email: identity.email, issuer: identity.issuer, kind: identity.kind, boundAt: now.toISOString()}
  const {existing, objKey} = await createKeyDocument(bucket, key, binding, now)
  if (!existing) return newKeyDocument(key, binding, now)
  if (existing.identity.subject === binding.subject && existing.identity.issuer === binding.issuer) return existing
  if (existing.signer) throw new Error(`${objKey} in ${bucket.url} is gateway ${existing.signer.name}'s key; refusing to bind it to ${identity.email ?? identity.subject}`)
  const updated: PublishedKey = {...existing, identity: binding, history: [...existing.history, existing.identity]}
  await bucket.put(objKey, JSON.stringify(updated, null, 2) + '\n', {contentType: 'application/json'})
  return updated
}

/** Publishes a gateway's key: `signer` says so, and the binding names the gateway, not a person. */
export async function publishGatewayKey(bucket: Bucket, signer: GatewaySigner, key: Pick<InstallationKey, 'keyId' | 'publicKeyPem'>, now = new Date()): Promise<PublishedKey> {
  const binding: KeyBinding = {subject: `gateway:${signer.name}`, issuer: 'dbgate-gateway', kind: 'service', boundAt: now.toISOString()}
  const {existing, objKey} = await createKeyDocument(bucket, key, binding, now, signer)
  if (!existing) return newKeyDocument(key, binding, now, signer)
  if (existing.signer?.kind === 'gateway' && existing.signer.name === signer.name) return existing
  if (existing.signer) throw new Error(`${objKey} in ${bucket.url} is already gateway ${existing.signer.name}'s key; give this gateway its own key`)
  // Published earlier as a person's key (the machine's key before it became a gateway's): a key
  // that signed as a person must not start vouching for everyone.
  throw new Error(`${objKey} in ${bucket.url} is bound to ${existing.identity.email ?? existing.identity.subject}, so it cannot become gateway ${signer.name}'s key; give the gateway a key of its own (server.signingKey, or a fresh server.stateDir)`)
}

function newKeyDocument(key: Pick<InstallationKey, 'keyId' | 'publicKeyPem'>, binding: KeyBinding, now: Date, signer?: GatewaySigner): PublishedKey {
  return {v: 1, keyId: key.keyId, alg: 'ed25519', publicKey: key.publicKeyPem, host: hostname(), createdAt: now.toISOString(), identity: binding, history: [], ...(signer ? {signer} : {})}
}

/**
 * Creates `keys/<id>.json` unless it exists (exclusively, so two processes agree); returns the
 * existing document otherwise, after checking it holds this very public key.
 */
async function createKeyDocument(
  bucket: Bucket,
  key: Pick<InstallationKey, 'keyId' | 'publicKeyPem'>,
  binding: KeyBinding,
  now: Date,
  signer?: GatewaySigner,
): Promise<{existing?: PublishedKey; objKey: string}> {
  const objKey = keyObjectKey(key.keyId)
  try {
    await bucket.put(objKey, JSON.stringify(newKeyDocument(key, binding, now, signer), null, 2) + '\n', {ifNoneMatch: true, contentType: 'application/json'})
    return {objKey}
  } catch (err) {
    if (!isBucketError(err, OBJECT_EXISTS)) throw err
  }
  const existing = parsePublishedKey((await bucket.get(objKey)).body.toString('utf8'))
  if (existing.publicKey.trim() !== key.publicKeyPem.trim()) {
    throw new Error(`${objKey} in ${bucket.url} holds a different public key with the same id; refusing to overwrite it`)
  }
  return {existing, objKey}
}

export function parsePublishedKey(text: string): PublishedKey {
  const doc = JSON.parse(text) as PublishedKey
  if (doc.v !== 1 || doc.alg !== 'ed25519' || typeof doc.publicKey !== 'string' || typeof doc.keyId !== 'string') {
    throw new Error('not a dbgate published key (v1, ed25519)')
  }
  // The id is derived from the key, so a key file cannot claim someone else's id.
  if (keyIdOf(createPublicKey(doc.publicKey)) !== doc.keyId) throw new Error(`key ${doc.keyId} does not match its public key`)
  if (doc.signer !== undefined && (doc.signer?.kind !== 'gateway' || typeof doc.signer.name !== 'string')) throw new Error(`key ${doc.keyId} has a signer that is not {kind: gateway, name}`)
  doc.history ??= []
  return doc
}

/** Every published key in the bucket; unreadable ones are reported, not silently skipped. */
export async function loadKeyRing(bucket: Bucket): Promise<{keys: KeyRing; errors: {key: string; message: string}[]}> {
  const keys: KeyRing = new Map()
  const errors: {key: string; message: string}[] = []
  for await (const obj of bucket.list('keys/')) {
    if (!obj.key.endsWith('.json')) continue
    try {
      const doc = parsePublishedKey((await bucket.get(obj.key)).body.toString('utf8'))
      keys.set(doc.keyId, doc)
    } catch (err) {
      errors.push({key: obj.key, message: (err as Error).message})
    }
  }
  return {keys, errors}
}

export function verifySignature(unsignedBytes: string, signatureB64: string, publicKeyPem: string): boolean {
  try {
    return verify(null, signatureMessage(unsignedBytes), createPublicKey(publicKeyPem), Buffer.from(signatureB64, 'base64'))
  } catch {
    return false
  }
}
