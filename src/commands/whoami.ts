import {loadCommandConfig} from '../cli/config.js'
import {configFlag} from '../cli/flags.js'
import {formatWhoami, identityConfigFrom, runWhoami, type WhoamiOutput} from '../identity/cli.js'
import {processIO} from '../identity/cli.js'
import {DbgateCommand} from '../cli/base-command.js'

export default class Whoami extends DbgateCommand {
  static override summary = 'Show the identity dbgate will use.'
  static override description =
    'Verifies the token (refreshing it if it has expired) and shows subject, e-mail, name, groups, issuer, expiry and whether it is a person or a service. DBGATE_TOKEN, when set, is what is shown.'
  static override examples = ['$ dbgate whoami', '$ dbgate whoami --json']
  static override enableJsonFlag = true
  static override flags = {config: configFlag}

  async run(): Promise<WhoamiOutput> {
    const {flags} = await this.parse(Whoami)
    const io = processIO()
    const config = await identityConfigFrom(await loadCommandConfig(flags, this), io.env)
    const who = await runWhoami(config, {io})
    this.log(formatWhoami(who, Boolean(process.stdout.isTTY)))
    return who
  }
}
