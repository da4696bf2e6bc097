/** The text form of a secret source (`env:VAR`, `file:/path`, `keychain:NAME`), without I/O. */
import {isAbsolute, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import type {SecretRef} from './types.js'

export const SECRET_SOURCE_KINDS = ['env', 'file', 'keychain'] as const
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/** Keeps an inline secret out of JSON.stringify and util.inspect. */
export function inlineSecret(value: string): SecretRef {
  const ref = {kind: 'inline' as const}
  Object.defineProperty(ref, 'value', {value, enumerable: false})
  return ref as SecretRef
}

export type ParsedSecretSource =
  | {ok: true; ref: SecretRef}
  /** Messages never include the text itself, which may be a password. */
  | {ok: false; message: string; fix: string}

/**
 * Reads `env:VAR`, `file:PATH` (relative to `baseDir`; `file:///abs` also works) or
 * `keychain:NAME`. Anything else is an inline secret: the caller decides whether to warn.
 */
export function parseSecretSource(text: string, baseDir: string = process.cwd()): ParsedSecretSource {
  const m = /^(env|file|keychain):(.*)$/s.exec(text)
  if (!m) return {ok: true, ref: inlineSecret(text)}
  const [, kind, rest = ''] = m
  if (kind === 'env') {
    return ENV_NAME.test(rest)
      ? {ok: true, ref: {kind: 'env', name: rest}}
      : {ok: false, message: '"env:" must be followed by an environment variable name', fix: 'write env:NAME, e.g. env:PROD_DB_PASSWORD'}
  }
  if (kind === 'file') {
    let p = rest
    if (rest.startsWith('//')) {
      try {
        p = fileURLToPath(text)
      } catch {
        p = ''
      }
    }
    return p === ''
      ? {ok: false, message: '"file:" must be followed by a local path', fix: 'write file:/path/to/secret'}
      : {ok: true, ref: {kind: 'file', path: isAbsolute(p) ? p : resolve(baseDir, p)}}
  }
  return rest === ''
    ? {ok: false, message: '"keychain:" must be followed by an entry name', fix: 'write keychain:NAME, e.g. keychain:prod'}
    : {ok: true, ref: {kind: 'keychain', name: rest}}
}

/** Says where a secret comes from without revealing it: `env:PROD_DB_PASSWORD`, or `inline`. */
export function describeSecret(ref: SecretRef): string {
  switch (ref.kind) {
    case 'env':
      return `env:${ref.name}`
    case 'file':
      return `file:${ref.path}`
    case 'keychain':
      return `keychain:${ref.name}`
    case 'inline':
      return 'inline'
  }
}
