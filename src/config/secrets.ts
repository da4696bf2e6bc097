/**
 * Turns a secret source into the secret. Errors and warnings name the source (the variable, the
 * file, the keychain entry) and who needs it, never the value.
 */
import {open} from 'node:fs/promises'
import {parseSecretSource} from './secret-ref.js'
import type {SecretRef} from './types.js'

export const SECRET_SOURCE_INVALID = 'DBGATE_SECRET_SOURCE_INVALID'
export const SECRET_ENV_UNSET = 'DBGATE_SECRET_ENV_UNSET'
export const SECRET_FILE_UNREADABLE = 'DBGATE_SECRET_FILE_UNREADABLE'
export const SECRET_KEYCHAIN_UNAVAILABLE = 'DBGATE_SECRET_KEYCHAIN_UNAVAILABLE'
export const SECRET_KEYCHAIN_MISSING = 'DBGATE_SECRET_KEYCHAIN_MISSING'

export type SecretErrorCode =
  | typeof SECRET_SOURCE_INVALID
  | typeof SECRET_ENV_UNSET
  | typeof SECRET_FILE_UNREADABLE
  | typeof SECRET_KEYCHAIN_UNAVAILABLE
  | typeof SECRET_KEYCHAIN_MISSING

/** The keychain service name every dbgate secret is stored under. */
export const KEYCHAIN_SERVICE = 'dbgate'

export class SecretError extends Error {
  override readonly name = 'SecretError'
  readonly code: SecretErrorCode
  /** What to do about it. */
  readonly fix: string

  constructor(code: SecretErrorCode, message: string, fix: string) {
    super(message)
    this.code = code
    this.fix = fix
    Error.captureStackTrace?.(this, SecretError)
  }
}

/** The part of `@napi-rs/keyring`'s Entry that reading a secret needs. */
export interface KeychainEntry {
  getPassword(): string | null
}

export interface SecretContext {
  /** Who needs the secret, for messages: `target "prod"`. */
  target?: string
  /** The config key that names the source, for messages: `targets.prod.password`. */
  keyPath?: string
  env?: NodeJS.ProcessEnv
  /** For relative `file:` paths in a source given as text; default: the current directory. */
  baseDir?: string
  /** Receives non-fatal problems (a group-readable secret file). Default: process.emitWarning. */
  onWarning?: (message: string) => void
  /** Opens a keychain entry; default: `new Entry(service, account)` from @napi-rs/keyring. */
  openKeychain?: (service: string, account: string) => KeychainEntry | Promise<KeychainEntry>
}

function owner(ctx: SecretContext): string {
  const parts = [ctx.target ? `target "${ctx.target}"` : '', ctx.keyPath ?? ''].filter(Boolean)
  return parts.length ? ` (needed by ${parts.join(', ')})` : ''
}

async function defaultKeychain(service: string, account: string): Promise<KeychainEntry> {
  // Loaded on demand: the native module is only needed by people who use keychain: sources.
  const {Entry} = await import('@napi-rs/keyring')
  return new Entry(service, account)
}

/** Returns the secret named by `source` (`env:VAR`, `file:/path`, `keychain:NAME`, or the secret itself). */
export async function resolveSecret(source: string | SecretRef, ctx: SecretContext = {}): Promise<string> {
  let ref: SecretRef
  if (typeof source === 'string') {
    const parsed = parseSecretSource(source, ctx.baseDir)
    if (!parsed.ok) throw new SecretError(SECRET_SOURCE_INVALID, `${parsed.message}${owner(ctx)}`, parsed.fix)
    ref = parsed.ref
  } else {
    ref = source
  }
  switch (ref.kind) {
    case 'inline':
      return ref.value
    case 'env':
      return fromEnv(ref.name, ctx)
    case 'file':
      return fromFile(ref.path, ctx)
    case 'keychain':
      return fromKeychain(ref.name, ctx)
  }
}

function fromEnv(name: string, ctx: SecretContext): string {
  const value = (ctx.env ?? process.env)[name]
  if (value === undefined || value === '') {
    throw new SecretError(
      SECRET_ENV_UNSET,
      `environment variable ${name} is ${value === undefined ? 'not set' : 'empty'}${owner(ctx)}`,
      `set ${name} in the environment dbgate runs in, or change ${ctx.keyPath ?? 'the secret source'} to another source`,
    )
  }
  return value
}

async function fromFile(path: string, ctx: SecretContext): Promise<string> {
  let text: string
  let mode: number
  try {
    // One handle for both, so the mode checked is the mode of the file that was read.
    const fh = await open(path, 'r')
    try {
      mode = (await fh.stat()).mode & 0o777
      text = await fh.readFile('utf8')
    } finally {
      await fh.close()
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error'
    throw new SecretError(SECRET_FILE_UNREADABLE, `cannot read secret file ${path}: ${code}${owner(ctx)}`, `create ${path} readable by this user (chmod 600), or change ${ctx.keyPath ?? 'the secret source'}`)
  }
  // Permission bits mean nothing on Windows, where ACLs decide.
  if (process.platform !== 'win32' && mode & 0o044) {
    const warn = ctx.onWarning ?? ((m: string) => process.emitWarning(m, {code: 'DBGATE_SECRET_FILE_MODE'}))
    warn(`secret file ${path} is readable by ${mode & 0o004 ? 'every user' : 'its group'} (mode 0${mode.toString(8)})${owner(ctx)}; run: chmod 600 ${path}`)
  }
  const value = text.replace(/(\r?\n)+$/, '')
  if (value === '') throw new SecretError(SECRET_FILE_UNREADABLE, `secret file ${path} is empty${owner(ctx)}`, `write the secret into ${path}`)
  return value
}

async function fromKeychain(name: string, ctx: SecretContext): Promise<string> {
  const how = `store it in the OS keychain under service "${KEYCHAIN_SERVICE}", account "${name}" (macOS: security add-generic-password -s ${KEYCHAIN_SERVICE} -a ${name} -w), or use an env: or file: source`
  let value: string | null
  try {
    const entry = await (ctx.openKeychain ?? defaultKeychain)(KEYCHAIN_SERVICE, name)
    value = entry.getPassword()
  } catch (err) {
    // The keyring's messages describe the platform failure (no D-Bus session, access denied), never the secret.
    throw new SecretError(SECRET_KEYCHAIN_UNAVAILABLE, `cannot read keychain entry ${KEYCHAIN_SERVICE}/${name}: ${(err as Error).message}${owner(ctx)}`, `make sure an OS keychain is running and unlocked; otherwise use an env: or file: source`)
  }
  if (value === null || value === '') throw new SecretError(SECRET_KEYCHAIN_MISSING, `no keychain entry ${KEYCHAIN_SERVICE}/${name}${owner(ctx)}`, how)
  return value
}

