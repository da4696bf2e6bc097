import {createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject} from 'node:crypto'
import {constants as fsc} from 'node:fs'
import {chmod, mkdir, open, readFile, rename, stat, writeFile} from 'node:fs/promises'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {isBucketError, OBJECT_EXISTS, type Bucket} from '../bucket/index.js'
import type {Identity} from '../identity/types.js'
import {DocumentError, parseDocument} from '../util/document.js'
import {keyDir} from '../util/paths.js'
import {z} from 'zod'
import {sha256hex, signatureMessage, type Signer} from './chain.js'

/** Per-installation Ed25519 key: private half stays in the user's data dir, public half goes to the bucket. */
export interface InstallationKey extends Signer {
  publicKeyPem: string
  privateKey: KeyObject
  /** Set when the key is a gateway's (its key directory says so): it is published as the gateway's, never bound to a person. */
  gateway?: GatewaySigner
}

const GatewaySignerSchema = z.object({kind: z.literal('gateway'), name: z.string()})
/** A gateway that signs the sessions of everyone it serves. */
export type GatewaySigner = z.infer<typeof GatewaySignerSchema>

/** Marks a key directory as a gateway's: its key then speaks for the gateway (see `publishKey`). */
export const GATEWAY_MARKER = 'gateway.json'

const KeyBindingSchema = z.object({
  subject: z.string().min(1),
  email: z.string().optional(),
  issuer: z.string().min(1),
  kind: z.enum(['human', 'service']),
  boundAt: z.string(),
})
/** Who a published key speaks for: the identity fields an auditor needs, never a token or its hash. */
export type KeyBinding = z.infer<typeof KeyBindingSchema>

const PublishedKeySchema = z.object({
  v: z.literal(1),
  keyId: z.string().min(1),
  alg: z.literal('ed25519'),
  publicKey: z.string().min(1),
  host: z.string(),
  createdAt: z.string(),
  /** Current binding; earlier ones stay in `history`, so old sessions still verify after a re-login as someone else. */
  identity: KeyBindingSchema,
  history: z.array(KeyBindingSchema),
  /**
   * Present on a gateway's key: it signs sessions of any identity the gateway verified, and
   * `identity` names the gateway itself. Auditors decide which gateway keys they trust.
   */
  signer: GatewaySignerSchema.optional(),
})
/** `keys/<key-id>.json` in the bucket. */
export type PublishedKey = z.infer<typeof PublishedKeySchema>
/** Keys published before `history` existed have none. */
const PublishedKeyAsRead = PublishedKeySchema.extend({history: z.array(KeyBindingSchema).optional()})

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
  // `--workers` start several processes on one directory at once: files are replaced whole
  // (written aside, then renamed), so none of them ever reads a half-written one.
  const marker = JSON.stringify({name}) + '\n'
  if ((await readFile(join(dir, GATEWAY_MARKER), 'utf8').catch(() => undefined)) !== marker) await replaceFile(join(dir, GATEWAY_MARKER), marker)
  if (pem === undefined) return
  const file = join(dir, 'installation-ed25519.pem')
  const configured = fromPrivatePem(pem)
  const existing = await readFile(file, 'utf8').then(fromPrivatePem, () => undefined)
  if (existing?.keyId === configured.keyId) return
  await replaceFile(file, configured.privateKey.export({type: 'pkcs8', format: 'pem'}).toString())
}

async function replaceFile(path: string, text: string): Promise<void> {
  const aside = `${path}.${process.pid}.tmp`
  await writeFile(aside, text, {mode: 0o600})
  await chmod(aside, 0o600)
  await rename(aside, path)
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
  const existing = parsePublishedKey((await bucket.get(objKey)).body.toString('utf8'), `published key ${objKey}`)
  if (existing.publicKey.trim() !== key.publicKeyPem.trim()) {
    throw new Error(`${objKey} in ${bucket.url} holds a different public key with the same id; refusing to overwrite it`)
  }
  return {existing, objKey}
}

/** Checks a published key document; throws a DocumentError (or a mismatch) naming `document`. */
export function parsePublishedKey(text: string, document = 'published key'): PublishedKey {
  const doc = parseDocument(PublishedKeyAsRead, text, document)
  let id: string
  try {
    id = keyIdOf(createPublicKey(doc.publicKey))
  } catch {
    throw new DocumentError(document, ['publicKey: expected an Ed25519 public key in PEM'])
  }
  // The id is derived from the key, so a key file cannot claim someone else's id.
  if (id !== doc.keyId) throw new DocumentError(document, [`keyId: ${doc.keyId} does not match its public key`])
  return {...doc, history: doc.history ?? []}
}

/** Every published key in the bucket; unreadable ones are reported, not silently skipped. */
export async function loadKeyRing(bucket: Bucket): Promise<{keys: KeyRing; errors: {key: string; message: string}[]}> {
  const keys: KeyRing = new Map()
  const errors: {key: string; message: string}[] = []
  for await (const obj of bucket.list('keys/')) {
    if (!obj.key.endsWith('.json')) continue
    try {
      const doc = parsePublishedKey((await bucket.get(obj.key)).body.toString('utf8'), `published key ${obj.key}`)
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
