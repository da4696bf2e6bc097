/** Flags several commands share, so they are spelled and documented the same everywhere. */
import {Flags} from '@oclif/core'

export const configFlag = Flags.string({
  summary: 'Path to dbgate.yaml.',
  description: 'Default: ./dbgate.yaml, then $XDG_CONFIG_HOME/dbgate/config.yaml (~/.config/dbgate/config.yaml).',
  env: 'DBGATE_CONFIG',
  helpValue: '<path>',
})
