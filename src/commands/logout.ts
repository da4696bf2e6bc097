import {loadCommandConfig} from '../cli/config.js'
import {configFlag} from '../cli/flags.js'
import {formatLogout, identityConfigFrom, runLogout} from '../identity/cli.js'
import {processIO} from '../identity/cli.js'
import type {LogoutResult} from '../identity/logout.js'
import {DbgateCommand} from '../cli/base-command.js'

export default class Logout extends DbgateCommand {
  static override summary = 'Sign out: remove stored tokens and revoke them at the identity provider.'
  static override examples = ['$ dbgate logout']
  static override enableJsonFlag = true
  static override flags = {config: configFlag}

  async run(): Promise<LogoutResult> {
    const {flags} = await this.parse(Logout)
    const io = processIO()
    const config = await identityConfigFrom(await loadCommandConfig(flags, this), io.env)
    const result = await runLogout(config, {io})
    this.log(formatLogout(config, result))
    return result
  }
}
