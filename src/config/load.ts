import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {homedir} from 'node:os'
import {join, resolve} from 'node:path'
import {CONFIG_NOT_FOUND, CONFIG_UNREADABLE, ConfigError} from './errors.js'
import {userConfigFile} from '../util/paths.js'
import {parseConfigText} from './parse.js'
import type {ConfigSource, LoadedConfig} from './types.js'

export {CONFIG_INVALID, CONFIG_NOT_FOUND, CONFIG_UNREADABLE, CONFIG_UNTRUSTED, ConfigError, formatIssue} from './errors.js'
export {parseConfigText} from './parse.js'
export type {ConfigIssue, ConfigSource, DbgateConfig, LoadedConfig, TargetConfig} from './types.js'

export interface LoadOptions {
  /** From `--config`; wins over everything else. Relative to `cwd`. */
  configPath?: string
  cwd?: string
  env?: NodeJS.ProcessEnv
  homeDir?: string
}

export interface ConfigCandidate {
  path: string
  source: ConfigSource
  /** An explicitly named file must exist; the implicit places are just tried in turn. */
  explicit: boolean
}

const SOURCE_LABEL: Record<ConfigSource, string> = {
  flag: '--config',
  env: 'DBGATE_CONFIG',
  cwd: 'current directory',
  user: 'user config directory',
}

export const MINIMAL_EXAMPLE = `targets:
  prod:
    host: db.internal
    database: app
    user: app_rw
    password: env:PROD_DB_PASSWORD`

/**
 * Where dbgate looks, in order: `--config`, then `DBGATE_CONFIG`, then `./dbgate.yaml`, then
 * `$XDG_CONFIG_HOME/dbgate/config.yaml` (default `~/.config/dbgate/config.yaml`). A file named by
 * the flag or the variable is the only candidate: silently falling back to another file would run
 * with a policy the user did not ask for.
 */
export function configCandidates(opts: LoadOptions = {}): ConfigCandidate[] {
  const cwd = opts.cwd ?? process.cwd()
  const env = opts.env ?? process.env
  if (opts.configPath) return [{path: resolve(cwd, opts.configPath), source: 'flag', explicit: true}]
  if (env.DBGATE_CONFIG) return [{path: resolve(cwd, env.DBGATE_CONFIG), source: 'env', explicit: true}]
  return [
    {path: join(cwd, 'dbgate.yaml'), source: 'cwd', explicit: false},
    {path: userConfigFile(opts.homeDir ? {...env, HOME: opts.homeDir} : env), source: 'user', explicit: false},
  ]
}

/** Finds, reads, parses and validates the configuration. Throws ConfigError on any problem. */
export async function loadConfig(opts: LoadOptions = {}): Promise<LoadedConfig> {
  const candidates = configCandidates(opts)
  for (const candidate of candidates) {
    let text: string
    try {
      text = await readFile(candidate.path, 'utf8')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' && !candidate.explicit) continue
      if (code === 'ENOENT') {
        throw new ConfigError(CONFIG_NOT_FOUND, `Config file ${candidate.path} (from ${SOURCE_LABEL[candidate.source]}) does not exist`, {
          searched: [candidate.path],
          hint: `Fix the path, or create the file; a minimal one:\n\n${MINIMAL_EXAMPLE}`,
        })
      }
      throw new ConfigError(CONFIG_UNREADABLE, `Cannot read config file ${candidate.path} (from ${SOURCE_LABEL[candidate.source]}): ${code ?? (err as Error).message}`, {
        hint: code === 'EISDIR' ? 'Point to the YAML file, not its directory.' : 'Check the file exists and that you may read it.',
        cause: err,
      })
    }
    const {config, warnings} = parseConfigText(text, candidate.path, {env: opts.env, homeDir: opts.homeDir})
    return {path: candidate.path, source: candidate.source, sha256: createHash('sha256').update(text).digest('hex'), config, warnings}
  }
  throw new ConfigError(CONFIG_NOT_FOUND, 'No dbgate configuration found', {
    searched: candidates.map((c) => c.path),
    hint: `Create ./dbgate.yaml (or pass --config PATH, or set DBGATE_CONFIG). A minimal one:\n\n${MINIMAL_EXAMPLE}`,
  })
}
