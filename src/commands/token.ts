import {loadCommandConfig} from '../cli/config.js'
import {configFlag, durationFlag} from '../cli/flags.js'
import {identityConfigFrom, processIO, runToken, type TokenOutput} from '../identity/cli.js'
import {DbgateCommand} from '../cli/base-command.js'

export default class Token extends DbgateCommand {
  static override summary = 'Print a valid token for the signed-in identity, for clients that sign in to a dbgate gateway.'
  static override description = `Prints only the token on standard output, so it can be used as a password: PGPASSWORD=$(dbgate token) psql "host=gw.internal sslmode=verify-full dbname=prod user=alice@example.com". A stored sign-in is renewed first when the token would expire within --min-valid.

The identity is found as for every command: DBGATE_TOKEN (printed as is, once verified), then the sign-in from \`dbgate login\` (also \`dbgate login --client-credentials\`), then DBGATE_CLIENT_ID and DBGATE_CLIENT_SECRET (a fresh client-credentials grant).`
  static override examples = [
    '$ PGPASSWORD=$(dbgate token) psql "host=gw.internal sslmode=verify-full dbname=prod user=alice@example.com"',
    '$ dbgate token --min-valid 10m',
    '$ dbgate token --json',
  ]
  static override enableJsonFlag = true
  static override flags = {
    config: configFlag,
    'min-valid': durationFlag('Renew the token first when it would expire within this long (default 60s).'),
  }

  async run(): Promise<TokenOutput> {
    const {flags} = await this.parse(Token)
    const io = processIO()
    const config = await identityConfigFrom(await loadCommandConfig(flags, this), io.env)
    const out = await runToken(config, {io, minValidMs: flags['min-valid'] ?? 60_000})
    this.log(out.token)
    return out
  }
}
