/**
 * Trusting a `./dbgate.yaml` found in the current directory. A repository anyone can clone may
 * carry one, so the file it names as gateway or bucket must not receive (or have sealed to it) the
 * person's sign-in, nor a host it names receive the person's own database password, until the
 * person has read it and said so: `dbgate config trust` records the
 * file's absolute path and the SHA-256 of its content, and any change to the file needs trusting
 * again. Files named explicitly (`--config`, `DBGATE_CONFIG`) and the user's own file were chosen by
 * the person, and need no record.
 */
import {createHash} from 'node:crypto'
import {mkdir, readFile, rename, writeFile} from 'node:fs/promises'
import {dirname, join, relative, resolve} from 'node:path'
import {CONFIG_INVALID, CONFIG_UNTRUSTED, ConfigError} from './errors.js'
import {describeSecret} from './secret-ref.js'
import type {DbgateConfig, LoadedConfig, TargetConfig} from './types.js'
import {userConfigFile, userDir} from '../util/paths.js'

export interface TrustRecord {
  sha256: string
  trustedAt: string
}

interface TrustFile {
  version: 1
  files: Record<string, TrustRecord>
}

/** What would go out with the person's sign-in if the file were used: worded for the refusal. */
export type TrustedUse = 'gateway' | 'review'

/** `$XDG_STATE_HOME/dbgate/trusted-configs.json`: the person's own record, never shared. */
export const trustFile = (env?: NodeJS.ProcessEnv) => join(userDir('state', env), 'trusted-configs.json')

export const sha256Of = (text: string) => createHash('sha256').update(text).digest('hex')

/**
 * The recorded trusts; a missing file is none. A damaged one is none too when checking (fail
 * closed: nothing is trusted), but stops a change to it (`forWriting`), so no record is lost.
 */
export async function readTrusts(env: NodeJS.ProcessEnv = process.env, forWriting = false): Promise<Record<string, TrustRecord>> {
  let text: string
  try {
    text = await readFile(trustFile(env), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw err
  }
  try {
    const parsed = JSON.parse(text) as Partial<TrustFile>
    if (parsed && typeof parsed.files === 'object' && parsed.files !== null) return parsed.files
  } catch {
    // Reported below, for writing.
  }
  if (!forWriting) return {}
  throw new ConfigError(CONFIG_INVALID, `${trustFile(env)} is not a list of trusted files dbgate can read`, {
    file: trustFile(env),
    hint: 'Move it aside (dbgate then trusts nothing until you run `dbgate config trust` again), or repair its JSON: {"version": 1, "files": {"/abs/dbgate.yaml": {"sha256": "…", "trustedAt": "…"}}}.',
  })
}

async function writeTrusts(files: Record<string, TrustRecord>, env: NodeJS.ProcessEnv): Promise<void> {
  const file = trustFile(env)
  await mkdir(dirname(file), {recursive: true, mode: 0o700})
  // Written aside and renamed over, so a crash never leaves half a file, and created 0600 from the start.
  const temp = `${file}.${process.pid}.tmp`
  await writeFile(temp, JSON.stringify({version: 1, files} satisfies TrustFile, null, 2) + '\n', {mode: 0o600})
  await rename(temp, file)
}

/** Records the file's current content as trusted. Returns its absolute path and the hash recorded. */
export async function trustConfigFile(path: string, text: string, env: NodeJS.ProcessEnv = process.env, now = new Date()): Promise<{path: string; sha256: string}> {
  const absolute = resolve(path)
  const files = await readTrusts(env, true)
  const sha256 = sha256Of(text)
  files[absolute] = {sha256, trustedAt: now.toISOString()}
  await writeTrusts(files, env)
  return {path: absolute, sha256}
}

/** Drops the record for a file; says whether there was one. */
export async function forgetConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const absolute = resolve(path)
  const files = await readTrusts(env, true)
  if (!(absolute in files)) return false
  delete files[absolute]
  await writeTrusts(files, env)
  return true
}

/** Why a loaded configuration may not be used with the person's sign-in, or undefined if it may. */
export async function untrustedReason(loaded: LoadedConfig, env: NodeJS.ProcessEnv = process.env): Promise<'never' | 'changed' | undefined> {
  if (loaded.source !== 'cwd' && !launcherNamed(loaded, env)) return undefined
  const record = (await readTrusts(env))[resolve(loaded.path)]
  if (!record) return 'never'
  return loaded.sha256 !== undefined && record.sha256 === loaded.sha256 ? undefined : 'changed'
}

/**
 * A file the launching program's configuration named (`dbgate mcp` from an agent's `.mcp.json`,
 * which came with the repository as easily as a ./dbgate.yaml), other than the person's own.
 */
function launcherNamed(loaded: LoadedConfig, env: NodeJS.ProcessEnv): boolean {
  return loaded.namedByLauncher === true && (loaded.source === 'flag' || loaded.source === 'env') && resolve(loaded.path) !== resolve(userConfigFile(env))
}

function whatItWouldDo(config: DbgateConfig, use: TrustedUse): string {
  const gw = config.gateway
  if (gw && use === 'gateway') return `it names a gateway, ${gw.address.host}:${gw.address.port}, that would receive your sign-in`
  if (gw) return `it names a gateway, ${gw.address.host}:${gw.address.port}, whose certificate would decide which approval requests your decision seals your sign-in to`
  return `it names the bucket ${config.bucket.url}, whose approval requests your decision would seal your sign-in to`
}

/**
 * Throws CONFIG_UNTRUSTED unless the configuration may carry the person's sign-in: named
 * explicitly, the user's own, or a `./dbgate.yaml` trusted as it is now. Called before anything is sent.
 */
export async function requireTrustedConfig(loaded: LoadedConfig, use: TrustedUse, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  await refuseUntrusted(loaded, env, () => whatItWouldDo(loaded.config, use))
}

/**
 * What of the person's own a target would send to its host: a password read from their
 * environment, their files or their keychain, or an RDS IAM token made with their AWS
 * credentials. A password written in the file is the file's, not theirs: undefined.
 */
export function personalSecretOf(target: TargetConfig): string | undefined {
  if (target.rdsIam) return `an RDS IAM token made with your AWS credentials (region ${target.rdsIam.region}${target.rdsIam.profile !== undefined ? `, profile ${target.rdsIam.profile}` : ''})`
  if (target.password && target.password.kind !== 'inline') return `your password from ${describeSecret(target.password)}`
  return undefined
}

/**
 * Throws CONFIG_UNTRUSTED before a target is dialled when the file is an untrusted `./dbgate.yaml`
 * and the target would hand its host something of the person's own (`personalSecretOf`): a
 * planted file can name any host, and take the password of `keychain:prod` (or the contents of
 * `file:~/.ssh/id_ed25519`) as its own, in clear if that host asks for it in clear.
 */
export async function requireTrustedTarget(loaded: LoadedConfig, target: TargetConfig, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const secret = personalSecretOf(target)
  if (!secret) return
  await refuseUntrusted(loaded, env, () => `it names a target, ${target.name}, at ${target.host}:${target.port}, that would receive ${secret}`)
}

/**
 * What of the person's own signing in would send to the issuer the file names: a client secret read
 * from their environment, their files or their keychain (`identity.clientSecret`), or the service
 * credentials of DBGATE_CLIENT_ID and DBGATE_CLIENT_SECRET. A secret written in the file is the
 * file's, not theirs: undefined.
 */
export function personalIdentitySecretOf(config: DbgateConfig, env: NodeJS.ProcessEnv): string | undefined {
  const secret = config.identity?.clientSecret
  if (secret && secret.kind !== 'inline') return `identity.clientSecret from ${describeSecret(secret)}`
  if (env.DBGATE_CLIENT_ID && env.DBGATE_CLIENT_SECRET) return 'your service client secret (DBGATE_CLIENT_SECRET or --client-secret)'
  return undefined
}

/**
 * Throws CONFIG_UNTRUSTED before the identity section is used when the file is an untrusted
 * `./dbgate.yaml` and signing in would hand its issuer something of the person's own
 * (`personalIdentitySecretOf`): a planted file can name any issuer, and the token endpoint of that
 * issuer receives the client secret in clear (`clientSecret: file:~/.ssh/id_ed25519`).
 */
export async function requireTrustedIdentity(loaded: LoadedConfig, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const issuer = loaded.config.identity?.issuer
  const secret = personalIdentitySecretOf(loaded.config, env)
  if (!issuer || !secret) return
  await refuseUntrusted(loaded, env, () => `its identity section names an issuer, ${issuer}, that would receive ${secret}`)
}

async function refuseUntrusted(loaded: LoadedConfig, env: NodeJS.ProcessEnv, what: () => string): Promise<void> {
  const reason = await untrustedReason(loaded, env)
  if (!reason) return
  const shown = relative(process.cwd(), loaded.path) || loaded.path
  const name = shown.startsWith('..') ? loaded.path : `./${shown}`
  if (loaded.source !== 'cwd') {
    const how = loaded.source === 'flag' ? '--config' : 'DBGATE_CONFIG'
    const state = reason === 'never' ? `was named (${how}) by the configuration that started this MCP server, and you have not trusted it` : `was named (${how}) by the configuration that started this MCP server, and has changed since you trusted it`
    throw new ConfigError(CONFIG_UNTRUSTED, `${name} ${state}: ${what()}. Nothing was sent.`, {
      file: loaded.path,
      hint: `An agent's MCP configuration (.mcp.json, .cursor/mcp.json) can come with a repository you cloned, and a file an agent may edit can name any address. Read it, then run \`dbgate config trust ${loaded.path}\` (it trusts this content; any change needs trusting again).`,
    })
  }
  const state = reason === 'never' ? 'was found in the current directory and you have not trusted it' : 'was found in the current directory and has changed since you trusted it'
  throw new ConfigError(CONFIG_UNTRUSTED, `${name} ${state}: ${what()}. Nothing was sent.`, {
    file: loaded.path,
    hint: `A file in a repository you cloned can name any address. Read it, then run \`dbgate config trust\` (it trusts this content; any change needs trusting again), or pass --config ${name} to use it once.`,
  })
}
