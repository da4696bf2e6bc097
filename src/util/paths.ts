/**
 * Every directory dbgate keeps things in, decided here and nowhere else. On Linux and macOS the XDG
 * base directory specification decides: `$XDG_CONFIG_HOME`, `$XDG_DATA_HOME`, `$XDG_STATE_HOME`,
 * `$XDG_CACHE_HOME`, each ignored unless it is an absolute path (the specification says relative
 * values are invalid), with `~/.config`, `~/.local/share`, `~/.local/state` and `~/.cache` as
 * defaults. On Windows, `%APPDATA%` holds configuration and data, `%LOCALAPPDATA%` state and caches.
 */
import {homedir} from 'node:os'
import {isAbsolute, join} from 'node:path'

export type UserDirKind = 'config' | 'data' | 'state' | 'cache'

const XDG: Record<UserDirKind, {variable: string; fallback: string[]; windows: 'APPDATA' | 'LOCALAPPDATA'}> = {
  config: {variable: 'XDG_CONFIG_HOME', fallback: ['.config'], windows: 'APPDATA'},
  data: {variable: 'XDG_DATA_HOME', fallback: ['.local', 'share'], windows: 'APPDATA'},
  state: {variable: 'XDG_STATE_HOME', fallback: ['.local', 'state'], windows: 'LOCALAPPDATA'},
  cache: {variable: 'XDG_CACHE_HOME', fallback: ['.cache'], windows: 'LOCALAPPDATA'},
}

const absolute = (value: string | undefined): string | undefined => (value && isAbsolute(value) ? value : undefined)

/** The home directory: `$HOME` of the given environment when set, so a test or a demo person can have their own. */
export function homeDir(env: NodeJS.ProcessEnv = process.env): string {
  return absolute(env.HOME) ?? homedir()
}

/** `$XDG_<KIND>_HOME/dbgate`, or its default: the one answer to "where does dbgate keep its <kind>". */
export function userDir(kind: UserDirKind, env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  const spec = XDG[kind]
  const xdg = absolute(env[spec.variable])
  if (xdg) return join(xdg, 'dbgate')
  const windows = platform === 'win32' ? absolute(env[spec.windows]) : undefined
  if (windows) return join(windows, 'dbgate')
  return join(homeDir(env), ...spec.fallback, 'dbgate')
}

/** `~/.config/dbgate/config.yaml`: the configuration used when no other is named or found. */
export const userConfigFile = (env?: NodeJS.ProcessEnv) => join(userDir('config', env), 'config.yaml')
/** Where the token file store keeps sign-ins (and their refresh locks) when no keychain is used. */
export const tokenDir = (env?: NodeJS.ProcessEnv) => join(userDir('config', env), 'tokens')
/** This installation's signing key. */
export const keyDir = (env?: NodeJS.ProcessEnv) => join(userDir('data', env), 'keys')
/** The default bucket when none is configured: recordings work before anyone sets one up. */
export const defaultBucketDir = (env?: NodeJS.ProcessEnv) => join(userDir('data', env), 'bucket')
/** Recordings waiting to be shipped: `DBGATE_SPOOL_DIR` when set (for tunnels and gateways as for the `sessions` commands). */
export const spoolDir = (env: NodeJS.ProcessEnv = process.env) => env.DBGATE_SPOOL_DIR || join(userDir('state', env), 'spool')
/** Shipped sessions downloaded for `dbgate sessions` and `dbgate report`. */
export const sessionCacheDir = (env?: NodeJS.ProcessEnv) => join(userDir('cache', env), 'sessions')
/** Verified copies of published policies, for starting a tunnel while the bucket is unreachable. */
export const policyCacheDir = (env?: NodeJS.ProcessEnv) => join(userDir('cache', env), 'policies')
