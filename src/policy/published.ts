import {canonicalJson} from '../util/canonical-json.js'
import {createHash, createPublicKey, verify} from 'node:crypto'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {parsePublishedKey, type InstallationKey, type KeyRing, type PublishedKey} from '../audit/signing.js'
import {isBucketError, OBJECT_EXISTS, type Bucket} from '../bucket/index.js'
import {policyBody} from '../config/schema.js'
import type {TargetConfig} from '../config/types.js'
import type {Identity} from '../identity/types.js'
import {DocumentError, parseDocument} from '../util/document.js'
import {z} from 'zod'

/**
 * Central policy: what a target may do is published to the bucket by an admin, signed, and
 * versioned, so an engineer cannot weaken it by editing a local file. Connection details stay
 * local; everything that decides what is allowed travels.
 */

/** The part of a published policy that decides what is allowed; its schema is dbgate.yaml's (src/config/schema.ts). */
export type PolicyBody = z.output<typeof policyBody>

const PublishedPolicySchema = z.object({
  v: z.literal(1),
  target: z.string().min(1),
  version: z.number().int().positive(),
  publishedAt: z.string(),
  publisher: z.object({subject: z.string(), email: z.string().optional(), issuer: z.string(), kind: z.enum(['human', 'service'])}),
  keyId: z.string().min(1),
  /** sha256 of the canonical body: what sessions record as the policy they ran under. */
  hash: z.string(),
  body: policyBody,
  /** Ed25519 over the canonical document without `sig`. */
  sig: z.string(),
})
/** `policies/<target>/v000001.json` in the bucket. */
export type PublishedPolicy = z.infer<typeof PublishedPolicySchema>

/** The offline copy a tunnel keeps of the last policy it verified, with the key that signed it. */
const CachedPolicySchema = z.object({policy: z.string(), key: z.unknown().optional()})

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
    doc = parseDocument(PublishedPolicySchema, text, 'the published policy')
  } catch (error) {
    throw new PolicyStoreError((error as DocumentError).message, 'POLICY_MALFORMED')
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
  // Only the body's own fields: whatever else a signed document carries never reaches the target.
  const {policy, rules, allow, reviewers, masking, approvals} = doc.body
  return {...target, policy, ...(allow ? {allow} : {}), reviewers, masking, approvals, rules: rules.map((r) => ({...r, source}))}
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
    const saved = parseDocument(CachedPolicySchema, cached, `the cached policy ${cacheFile}`)
    const savedKey = saved.key === undefined ? undefined : parsePublishedKey(JSON.stringify(saved.key), `the key saved with ${cacheFile}`)
    const keys = await opts.loadKeys().catch(() => (savedKey ? new Map([[savedKey.keyId, savedKey]]) : new Map<string, PublishedKey>()))
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
