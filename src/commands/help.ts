import {Args} from '@oclif/core'
import {loadHelpClass} from '@oclif/core'
import {DbgateCommand} from '../cli/base-command.js'
import {UsageError} from '../cli/errors.js'
import {suggestCommand} from '../hooks/command-not-found.js'

export default class HelpCommand extends DbgateCommand {
  static override summary = 'Show help for dbgate or for one command.'
  static override examples = ['$ dbgate help', '$ dbgate help connect', '$ dbgate help sessions replay']
  static override strict = false
  static override args = {command: Args.string({description: 'The command (or topic), in the words you type it.'})}

  async run(): Promise<void> {
    const {argv} = await this.parse(HelpCommand)
    const words = argv as string[]
    const id = words.join(':')
    if (words.length > 0 && !this.config.findCommand(id) && !this.config.findTopic(id)) {
      const found = suggestCommand(words, this.config.commands.filter((c) => !c.hidden).map((c) => c.id))
      throw new UsageError(`"${words.join(' ')}" is not a dbgate command.`, found ? `Did you mean \`dbgate help ${found.command}\`?` : 'Run `dbgate help` for the list of commands.')
    }
    const Help = await loadHelpClass(this.config)
    await new Help(this.config, this.config.pjson.oclif.helpOptions).showHelp(words)
  }
}
