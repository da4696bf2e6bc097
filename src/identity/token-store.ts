import {createHash} from 'node:crypto'
import {chmod, mkdir, open, readFile, rename, rm, stat, type FileHandle} from 'node:fs/promises'
import path from 'node:path'
import type {Entry} from '@napi-rs/keyring'
import {createRequire} from 'node:module'
import {tokenDir} from '../util/paths.js'
import type {IdentityConfig} from './config.js'
import {TokenStoreError} from './errors.js'
import {withFileLock} from './refresh-lock.js'

/** What dbgate keeps between runs for one issuer + client. Serialized as JSON; never logged. */
export interface StoredTokens {
  version: 1
  kind: 'human' | 'service'
  idToken?: string
  accessToken: string
  refreshToken?: string
  /** Epoch ms at which the access token expires, when the IdP said. */
  accessTokenExpiresAt?: number
  scope?: string
  /** For a service identity: the client that ran the client-credentials grant. */
  serviceClientId?: string
  savedAt: number
}

export interface TokenStore {
  load(key: string): Promise<StoredTokens | undefined>
  /** Resolves to where the tokens went, for telling the user: `the OS keychain` or `file <path>`. */
  save(key: string, tokens: StoredTokens): Promise<string>
  /** True when something was removed from either place. */
  remove(key: string): Promise<boolean>
  /**
   * Runs `fn` while no other dbgate process on this machine runs it for the same key: renewing a
   * sign-in happens inside, so a rotated refresh token is never presented twice.
   */
  exclusive<T>(key: string, fn: () => Promise<T>): Promise<T>
}

/** The subset of @napi-rs/keyring's Entry dbgate uses; injectable so tests can simulate a keychain. */
export interface KeyringEntry {
  getPassword(): string | null
  setPassword(password: string): void
  deletePassword(): boolean
}

export type KeyringFactory = (service: string, account: string) => KeyringEntry

export interface TokenStoreOptions {
  /** Told, once per process and file, that tokens went to a file instead of the keychain. */
  warn?: (message: string) => void
  env?: NodeJS.ProcessEnv
  /** Defaults to `$XDG_CONFIG_HOME/dbgate` (or `~/.config/dbgate`, `%APPDATA%\dbgate` on Windows). */
  configDir?: string
  keyring?: KeyringFactory
}

export const KEYRING_SERVICE = 'dbgate'

export function storeKey(config: Pick<IdentityConfig, 'issuer' | 'clientId'>): string {
  return `${config.issuer}|${config.clientId}`
}

function keyringDisabled(env: NodeJS.ProcessEnv): boolean {
  return ['off', '0', 'false', 'no', 'file'].includes((env.DBGATE_KEYRING ?? '').toLowerCase())
}

// Warned once per process per file: a long-running tunnel that refreshes every few minutes must
// not repeat itself, but every separate `dbgate login` that lands a token in a plaintext file says
// so again. A per-machine "already warned" marker would let a later, silent fallback go unnoticed.
const warnedFiles = new Set<string>()

function isStoredTokens(value: unknown): value is StoredTokens {
  const v = value as Partial<StoredTokens> | null
  return v !== null && typeof v === 'object' && v.version === 1 && typeof v.accessToken === 'string' && (v.kind === 'human' || v.kind === 'service')
}

// `dbgate logout` removes stored tokens it cannot read, so this always works.
const SIGN_IN_AGAIN = 'Run `dbgate logout` to remove them, then `dbgate login` to sign in again.'

function parse(text: string, where: string): StoredTokens {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    // JSON.parse quotes the input in its message, and the input is tokens: no cause attached.
    throw new TokenStoreError(`Stored tokens in ${where} are unreadable.`, {nextStep: SIGN_IN_AGAIN})
  }
  if (!isStoredTokens(value)) throw new TokenStoreError(`Stored tokens in ${where} have an unknown format.`, {nextStep: SIGN_IN_AGAIN})
  return value
}

const keyringOff: KeyringFactory = () => {
  throw new Error('the OS keychain is turned off')
}

let entryClass: typeof Entry | undefined
/**
 * The keychain's native addon (~3 MB of library), loaded when a token store is first opened rather
 * than with every module that names this one (a gateway verifies tokens but never stores any).
 * Loaded here, outside the store's fallbacks: an addon that fails to load fails the opening with
 * its own error; it is not mistaken for a headless machine without a keychain.
 */
function osKeyring(): KeyringFactory {
  entryClass ??= (createRequire(import.meta.url)('@napi-rs/keyring') as {Entry: typeof Entry}).Entry
  const E = entryClass
  return (service, account) => new E(service, account)
}

/**
 * The OS keychain (macOS Keychain, Windows Credential Manager, Secret Service / kernel keyring on
 * Linux) through @napi-rs/keyring, one entry per issuer+client. Where no keychain answers — headless
 * Linux, containers, CI — or DBGATE_KEYRING=off, a JSON file of mode 0600 in a 0700 directory.
 */
export function openTokenStore(options: TokenStoreOptions = {}): TokenStore {
  const env = options.env ?? process.env
  const forcedOff = keyringDisabled(env)
  const dir = options.configDir ? path.join(options.configDir, 'tokens') : tokenDir(env)
  const keyring: KeyringFactory = options.keyring ?? (forcedOff ? keyringOff : osKeyring())
  const baseFor = (key: string) => path.join(dir, createHash('sha256').update(key).digest('hex').slice(0, 32))
  const fileFor = (key: string) => `${baseFor(key)}.json`

  const warnOnce = (file: string, reason: string) => {
    if (warnedFiles.has(file)) return
    warnedFiles.add(file)
    options.warn?.(`${reason} Your tokens are stored in plain text in ${file} (readable only by you, mode 0600).`)
  }

  /**
   * A token file dbgate did not leave as it writes them: one another user owns is refused (whoever
   * put it there would have the person work as them), and one others could read (restored from a
   * backup, copied by another tool) is made private again, with a warning that it may be copied.
   */
  async function checkPrivate(file: string, handle: FileHandle): Promise<void> {
    const uid = process.getuid?.()
    // Windows keeps no such owner and mode bits: its ACLs on the profile directory decide.
    if (uid === undefined) return
    const st = await handle.stat()
    if (st.uid !== uid) {
      throw new TokenStoreError(`${file} belongs to another user (uid ${st.uid}): signing in with it would make you whoever put it there.`, {nextStep: SIGN_IN_AGAIN})
    }
    const exposed = async (at: string, mode: number, tighten: () => Promise<void>, to: number) => {
      if ((mode & 0o077) === 0) return
      await tighten()
      options.warn?.(
        `${at} was readable by other users (mode 0${(mode & 0o777).toString(8)}); dbgate made it private (0${to.toString(8)}). Your sign-in may have been copied: run \`dbgate logout\` (it revokes the sign-in at the identity provider), then \`dbgate login\`.`,
      )
    }
    await exposed(dir, (await stat(dir)).mode, () => chmod(dir, 0o700), 0o700)
    await exposed(file, st.mode, () => handle.chmod(0o600), 0o600)
  }

  async function readFileStore(key: string): Promise<StoredTokens | undefined> {
    const file = fileFor(key)
    let text: string
    try {
      const handle = await open(file, 'r')
      try {
        await checkPrivate(file, handle)
        text = await handle.readFile('utf8')
      } finally {
        await handle.close()
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      if (error instanceof TokenStoreError) throw error
      throw new TokenStoreError(`Could not read ${file}.`, {cause: error})
    }
    return parse(text, file)
  }

  async function writeFileStore(key: string, tokens: StoredTokens): Promise<void> {
    const file = fileFor(key)
    const tmp = `${file}.${process.pid}.tmp`
    try {
      await mkdir(dir, {recursive: true, mode: 0o700})
      // mkdir's mode only applies to directories it creates, and a pre-existing one may be wider.
      await chmod(dir, 0o700)
      const handle = await open(tmp, 'w', 0o600)
      try {
        await handle.chmod(0o600)
        await handle.writeFile(JSON.stringify({key, ...tokens}), 'utf8')
        await handle.sync()
      } finally {
        await handle.close()
      }
      await rename(tmp, file)
      await chmod(file, 0o600)
    } catch (error) {
      await rm(tmp, {force: true})
      throw new TokenStoreError(`Could not write the token file ${file}.`, {cause: error})
    }
  }

  return {
    async load(key) {
      if (!forcedOff) {
        let secret: string | null = null
        try {
          secret = keyring(KEYRING_SERVICE, key).getPassword()
        } catch {
          // An unreachable keychain is the normal headless case; the file store answers instead.
        }
        if (secret !== null) return parse(secret, 'the OS keychain')
      }
      const stored = await readFileStore(key)
      if (!stored) return undefined
      const {key: _key, ...tokens} = stored as StoredTokens & {key?: string}
      return tokens
    },

    async save(key, tokens) {
      if (!forcedOff) {
        let failure: unknown
        try {
          keyring(KEYRING_SERVICE, key).setPassword(JSON.stringify(tokens))
        } catch (error) {
          failure = error
        }
        if (failure === undefined) {
          // A copy left from an earlier fallback would be plaintext nobody needs any more.
          await rm(fileFor(key), {force: true})
          return 'the OS keychain'
        }
        await writeFileStore(key, tokens)
        const why = failure instanceof Error ? failure.message : String(failure)
        warnOnce(fileFor(key), `No OS keychain is available here (${why}).`)
        return `file ${fileFor(key)}`
      }
      await writeFileStore(key, tokens)
      warnOnce(fileFor(key), 'The OS keychain is turned off (DBGATE_KEYRING=off).')
      return `file ${fileFor(key)}`
    },

    async remove(key) {
      let removed = false
      if (!forcedOff) {
        try {
          removed = keyring(KEYRING_SERVICE, key).deletePassword()
        } catch {
          // Nothing reachable to delete from; the file below is still removed.
        }
      }
      const file = fileFor(key)
      const existed = await readFile(file).then(
        () => true,
        () => false,
      )
      await rm(file, {force: true})
      return removed || existed
    },

    exclusive(key, fn) {
      return withFileLock(`${baseFor(key)}.lock`, fn)
    },
  }
}

/** For tests only: lets each test observe the once-per-process warning again. */
export function resetFallbackWarnings(): void {
  warnedFiles.clear()
}
