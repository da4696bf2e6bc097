import {canonicalJson} from '../util/canonical-json.js'
import {createHash, createPublicKey, verify} from 'node:crypto'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import type {InstallationKey, KeyRing, PublishedKey} from '../audit/signing.js'
import {isBucketError, OBJECT_EXISTS, type Bucket} from '../bucket/index.js'
import type {ApprovalsConfig, MaskingConfig, PolicyPack, RuleConfig, TargetConfig} from '../config/types.js'
import type {Identity} from '../identity/types.js'

/**
 * Central policy: what a target may do is published to the bucket by an admin, signed, and
 * versioned, so an engineer cannot weaken it by editing a local file. Connection details stay
 * local; everything that decides what is allowed travels.
 */

export interface PolicyBody {
  policy: PolicyPack
  rules: Omit<RuleConfig, 'source'>[]
  allow?: string[]
  reviewers: string[]
  masking: MaskingConfig
  approvals: ApprovalsConfig
}

export interface PublishedPolicy {
  v: 1
  target: string
  version: number
  publishedAt: string
  publisher: {subject: string; email?: string; issuer: string; kind: Identity['kind']}
  keyId: string
  /** sha256 of the canonical body: what sessions record as the policy they ran under. */
  hash: string
  body: PolicyBody
  /** Ed25519 over the canonical document without `sig`. */
  sig: string
}

export class PolicyStoreError extends Error {
  override name = 'PolicyStoreError'
  constructor(
    message: string,
    readonly code: 'POLICY_SIGNATURE_INVALID' | 'POLICY_UNKNOWN_KEY' | 'POLICY_MALFORMED',
  ) {
    super(message)
  }
}


const DOMAIN = 'dbgate policy v1\n'
const message = (doc: Omit<PublishedPolicy, 'sig'>): Buffer => Buffer.from(DOMAIN + canonicalJson(doc))

export function policyBodyOf(target: TargetConfig): PolicyBody {
  return {
    policy: target.policy,
    rules: target.rules.map(({source: _source, ...rule}) => rule),
    allow: target.allow,
    reviewers: target.reviewers,
    masking: target.masking,
    approvals: target.approvals,
  }
}

export function policyBodyHash(body: PolicyBody): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex')
}

const prefix = (target: string) => `policies/${encodeURIComponent(target)}/`
const versionKey = (target: string, version: number) => `${prefix(target)}v${String(version).padStart(6, '0')}.json`

/** The newest published version's key for a target, or undefined when none was ever published. */
async function latestKey(bucket: Bucket, target: string): Promise<{key: string; version: number} | undefined> {
  let best: {key: string; version: number} | undefined
  for await (const obj of bucket.list(prefix(target))) {
    const m = /\/v(\d{6})\.json$/.exec(obj.key)
    if (m && (!best || Number(m[1]) > best.version)) best = {key: obj.key, version: Number(m[1])}
  }
  return best
}

/** Publishes the target's policy as the next version; create-exclusive, so concurrent publishers each get their own number. */
export async function publishPolicy(bucket: Bucket, target: TargetConfig, publisher: Identity, key: InstallationKey, now = new Date()): Promise<PublishedPolicy> {
  const body = policyBodyOf(target)
  let version = ((await latestKey(bucket, target.name))?.version ?? 0) + 1
  for (;;) {
    const unsigned: Omit<PublishedPolicy, 'sig'> = {
      v: 1,
      target: target.name,
      version,
      publishedAt: now.toISOString(),
      publisher: {subject: publisher.subject, email: publisher.email, issuer: publisher.issuer, kind: publisher.kind},
      keyId: key.keyId,
      hash: policyBodyHash(body),
      body,
    }
    const doc: PublishedPolicy = {...unsigned, sig: key.sign(message(unsigned))}
    try {
      await bucket.put(versionKey(target.name, version), JSON.stringify(doc, null, 2) + '\n', {ifNoneMatch: true, contentType: 'application/json'})
      return doc
    } catch (error) {
      if (!isBucketError(error, OBJECT_EXISTS)) throw error
      version++
    }
  }
}

/** Parses and checks a published document against the bucket's published keys. */
export function verifyPublishedPolicy(text: string, keys: KeyRing): PublishedPolicy {
  let doc: PublishedPolicy
  try {
    doc = JSON.parse(text) as PublishedPolicy
  } catch {
    throw new PolicyStoreError('the published policy is not valid JSON', 'POLICY_MALFORMED')
  }
  if (doc?.v !== 1 || typeof doc.sig !== 'string' || typeof doc.keyId !== 'string' || !doc.body) {
    throw new PolicyStoreError('the published policy is not a dbgate policy document', 'POLICY_MALFORMED')
  }
  const published = keys.get(doc.keyId)
  if (!published) throw new PolicyStoreError(`the published policy for ${doc.target} v${doc.version} is signed by key ${doc.keyId}, which is not among the bucket's keys`, 'POLICY_UNKNOWN_KEY')
  const {sig, ...unsigned} = doc
  let ok = false
  try {
    ok = verify(null, message(unsigned), createPublicKey(published.publicKey), Buffer.from(sig, 'base64'))
  } catch {
    ok = false
  }
  if (!ok || policyBodyHash(doc.body) !== doc.hash) {
    throw new PolicyStoreError(`the published policy for ${doc.target} v${doc.version} fails its signature check: it was altered after publishing`, 'POLICY_SIGNATURE_INVALID')
  }
  return doc
}

export interface EffectivePolicy {
  target: TargetConfig
  /** `v3 (published)`, `v3 (cached)`, `local`, `local (override; published v3 ignored)`… */
  version: string
  hash: string
  source: 'published' | 'cached' | 'local' | 'local-override' | 'local-unverified'
  notice?: string
}

export interface ResolveOptions {
  bucket: Bucket
  loadKeys: () => Promise<KeyRing>
  target: TargetConfig
  /** `--local-policy`: run the local file's policy even where a published one exists. */
  localPolicy?: boolean
  cacheDir: string
}

function applyBody(target: TargetConfig, doc: PublishedPolicy): TargetConfig {
  const source = {file: `bucket:${versionKey(doc.target, doc.version)}`, line: 0, column: 0}
  return {...target, ...doc.body, rules: doc.body.rules.map((r) => ({...r, source}))}
}

/**
 * Decides which policy a tunnel runs: the newest published one (verified, then cached for offline
 * use), the cached one when the bucket cannot be reached, or the local file's where nothing was
 * ever published — or where the user insisted with --local-policy, which is recorded.
 */
export async function resolvePolicy(opts: ResolveOptions): Promise<EffectivePolicy> {
  const local = opts.target
  const localHash = policyBodyHash(policyBodyOf(local))
  const cacheFile = path.join(opts.cacheDir, `${encodeURIComponent(local.name)}.json`)
  let doc: PublishedPolicy | undefined
  let source: EffectivePolicy['source'] = 'published'
  try {
    const latest = await latestKey(opts.bucket, local.name)
    if (latest) {
      const text = (await opts.bucket.get(latest.key)).body.toString('utf8')
      const keys = await opts.loadKeys()
      doc = verifyPublishedPolicy(text, keys)
      await mkdir(opts.cacheDir, {recursive: true, mode: 0o700})
      // The signer's public key travels with the copy, so it can be checked again offline.
      await writeFile(cacheFile, JSON.stringify({policy: text, key: keys.get(doc.keyId)}), {mode: 0o600})
    }
  } catch (error) {
    if (error instanceof PolicyStoreError) throw error
    const cached = await readFile(cacheFile, 'utf8').catch(() => undefined)
    if (!cached) {
      return {
        target: local,
        version: 'local',
        hash: localHash,
        source: 'local-unverified',
        notice: `could not reach the bucket to check for a published policy (${(error as Error).message}); running the local policy, and the recording says so`,
      }
    }
    // A local copy is easy to edit: check its signature again, against the bucket's keys when they
    // can be read, else the key saved with it (a swapped key shows up as a keyId auditors do not know).
    const saved = JSON.parse(cached) as {policy: string; key?: PublishedKey}
    const keys = await opts.loadKeys().catch(() => (saved.key ? new Map([[saved.key.keyId, saved.key]]) : new Map<string, PublishedKey>()))
    doc = verifyPublishedPolicy(saved.policy, keys)
    source = 'cached'
  }
  if (!doc) return {target: local, version: 'local', hash: localHash, source: 'local'}
  if (opts.localPolicy) {
    return {
      target: local,
      version: `local (override; published v${doc.version} ignored)`,
      hash: localHash,
      source: 'local-override',
      notice: `running the local policy instead of the published v${doc.version} (--local-policy); this is recorded in every session`,
    }
  }
  const differs = doc.hash !== localHash
  return {
    target: applyBody(local, doc),
    version: `v${doc.version} (${source})`,
    hash: doc.hash,
    source,
    notice: differs ? `using the published policy v${doc.version} for ${local.name}; the local file's policy differs and is ignored (use --local-policy to override, which is recorded)` : undefined,
  }
}
