/** Loading the configuration on behalf of a command. */
import {formatIssue} from '../config/errors.js'
import {loadConfig} from '../config/load.js'
import type {LoadedConfig} from '../config/types.js'
import type {ErrorOutput} from './errors.js'

/**
 * Loads the config for `--config` and prints its warnings to stderr. oclif fills the flag from
 * DBGATE_CONFIG too; a value that is just the variable's is left to the loader, so messages say
 * where the path really came from.
 */
export async function loadCommandConfig(flags: {config?: string}, out: ErrorOutput, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  const fromFlag = flags.config !== undefined && flags.config !== env.DBGATE_CONFIG ? flags.config : undefined
  const loaded = await loadConfig({configPath: fromFlag, env})
  for (const w of loaded.warnings) out.logToStderr(formatIssue(w))
  return loaded
}
