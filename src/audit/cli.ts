/** What the `sessions` commands share: where the bucket is, their filters, and small formatters. */
import {readFile} from 'node:fs/promises'
import {loadCommandConfig} from '../cli/config.js'
import type {ErrorOutput} from '../cli/errors.js'
import {defaultBucketUrl, openBucket, type Bucket} from '../bucket/index.js'
import {CONFIG_NOT_FOUND, ConfigError} from '../config/errors.js'
import {visible} from '../util/visible.js'
import type {UnreadableObject} from './index-cache.js'
import type {ListFilters, LoadedSession} from './read.js'
import {loadKeyRing, parsePublishedKey, type KeyRing} from './signing.js'
import {verifySession} from './verify.js'
import {signerTrust, type SignerTrust} from './trust.js'

export function listFilters(flags: {user?: string; target?: string; since?: Date; until?: Date; denied?: boolean; client?: string; agent?: boolean}): ListFilters {
  const client = flags.agent ? 'mcp' : flags.client === 'mcp' || flags.client === 'connect' ? flags.client : undefined
  return {
    ...(client ? {client} : {}),
    user: flags.user,
    target: flags.target,
    since: flags.since,
    until: flags.until,
    denied: flags.denied || undefined,
  }
}

/**
 * `--bucket` wins; then the configuration's `bucket`. An auditor often has no dbgate.yaml at all,
 * so a missing (not named) configuration falls back to the default local bucket rather than failing.
 */
export async function resolveBucket(flags: {bucket?: string; config?: string}, out: ErrorOutput, env: NodeJS.ProcessEnv = process.env): Promise<{bucket: Bucket; previewRows?: number}> {
  if (flags.bucket) return {bucket: openBucket(flags.bucket)}
  try {
    const {config} = await loadCommandConfig(flags, out, env)
    return {bucket: openBucket(config.bucket), previewRows: config.recording?.previewRows}
  } catch (err) {
    if (err instanceof ConfigError && err.code === CONFIG_NOT_FOUND && !flags.config && !env.DBGATE_CONFIG) {
      return {bucket: openBucket(defaultBucketUrl(env))}
    }
    throw err
  }
}

/**
 * The signers an auditor trusts: `--signer` (repeatable) for this run, else the configuration's
 * `recording.trustedSigners`, else none named (every published key counts). Read even when `--bucket`
 * or `--file` make the configuration otherwise unneeded, so a configured list is never skipped.
 */
export async function resolveSignerTrust(
  flags: {signer?: string[]; config?: string},
  out: ErrorOutput,
  env: NodeJS.ProcessEnv = process.env,
): Promise<SignerTrust | undefined> {
  if (flags.signer?.length) return signerTrust(flags.signer, undefined)
  try {
    const {config} = await loadCommandConfig(flags, out, env)
    return signerTrust(undefined, config.recording?.trustedSigners)
  } catch (err) {
    if (err instanceof ConfigError && err.code === CONFIG_NOT_FOUND && !flags.config && !env.DBGATE_CONFIG) return undefined
    throw err
  }
}

/**
 * The highest seq of a shipped session that a valid signature covers, for `show` and `replay` to
 * mark what comes after it. A bucket writer needs no key to cut a log's signed end off and chain
 * lines on: those lines verify only as "no end yet", and shown bare they read as recorded. Keys are
 * the bucket's published ones, judged with the auditor's trusted signers (any published key when
 * none are named, a gateway's included); a key ring that cannot be read leaves nothing covered.
 */
export async function signedThroughOf(bucket: Bucket, session: LoadedSession, flags: {config?: string}, out: ErrorOutput): Promise<number> {
  const [{keys}, named] = await Promise.all([loadKeyRing(bucket).catch(() => ({keys: new Map() as KeyRing})), resolveSignerTrust(flags, out)])
  const trust: SignerTrust = named ?? {names: [], trusts: () => true}
  return verifySession(session.text, keys, {trust, objectKey: session.summary.key}).signedThroughSeq
}

/** `--key` files: published keys an auditor trusts instead of the bucket's `keys/`. */
export async function readKeyFiles(paths: readonly string[]): Promise<KeyRing> {
  const keys: KeyRing = new Map()
  for (const path of paths) {
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      throw new Error(`cannot read key file ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}; --key takes a keys/<key-id>.json file copied from the bucket`)
    }
    try {
      const doc = parsePublishedKey(text, `key file ${path}`)
      keys.set(doc.keyId, doc)
    } catch (err) {
      throw new Error(`${(err as Error).message}; --key takes a keys/<key-id>.json file copied from the bucket`)
    }
  }
  return keys
}


/** `3m ago`, `2h ago`, `5d ago` for people; ISO stays in piped and JSON output. */
export function relativeTime(iso: string | undefined, now = new Date()): string {
  if (!iso) return '?'
  const s = Math.round((now.getTime() - new Date(iso).getTime()) / 1000)
  if (s < 60) return `${Math.max(s, 0)}s ago`
  if (s < 3600) return `${Math.floor(s / 60)}m ago`
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`
  return `${Math.floor(s / 86_400)}d ago`
}

/**
 * stderr lines for the objects under `sessions/` that could not be read: each by key (escaped: a
 * key is whatever its writer chose) and what is wrong, then the count. The caller exits 1.
 */
export function unreadableReport(unreadable: readonly UnreadableObject[]): string[] {
  if (unreadable.length === 0) return []
  const n = unreadable.length
  return [
    ...unreadable.map((u) => `unreadable: ${visible(u.key)}: ${visible(u.problem)}`),
    `${n} object${n === 1 ? '' : 's'} under sessions/ could not be read as session logs and ${n === 1 ? 'is' : 'are'} missing above: a damaged log, or something written there that is not one; \`dbgate sessions verify\` reports ${n === 1 ? 'it' : 'each'} as OBJECT_UNREADABLE.`,
  ]
}
