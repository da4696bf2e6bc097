import {Flags} from '@oclif/core'
import {loadCommandConfig} from '../cli/config.js'
import {UsageError} from '../cli/errors.js'
import {configFlag} from '../cli/flags.js'
import {identityConfigFrom, runLogin} from '../identity/cli.js'
import {interruptSignal, processIO} from '../identity/cli.js'
import {serviceRequestFromEnv} from '../identity/service.js'
import type {Identity} from '../identity/types.js'
import {DbgateCommand} from '../cli/base-command.js'
import {visible} from '../util/visible.js'

export default class Login extends DbgateCommand {
  static override summary = 'Sign in with your identity provider (OIDC device code).'
  static override description = `Shows a one-time code and a URL; approve the sign-in in a browser on any device (this machine needs none). Tokens are kept in the OS keychain, or in a 0600 file where no keychain exists.

CI jobs and agents use --client-credentials with DBGATE_CLIENT_ID and DBGATE_CLIENT_SECRET to sign in as a service identity.`
  static override examples = [
    '$ dbgate login',
    '$ dbgate login --no-browser',
    '$ DBGATE_CLIENT_ID=ci-bot DBGATE_CLIENT_SECRET=… dbgate login --client-credentials',
  ]
  static override enableJsonFlag = true
  static override flags = {
    config: configFlag,
    browser: Flags.boolean({summary: 'Open a browser at the verification page.', description: 'On by default where a display exists; --no-browser only prints the URL.', allowNo: true, default: true}),
    'client-credentials': Flags.boolean({summary: 'Sign in as a service identity with the client-credentials grant.', default: false}),
    'client-id': Flags.string({summary: 'Service client id (with --client-credentials).', env: 'DBGATE_CLIENT_ID', helpValue: '<id>'}),
    'client-secret': Flags.string({summary: 'Service client secret (with --client-credentials). Prefer the environment variable: arguments are visible to other local users.', env: 'DBGATE_CLIENT_SECRET', helpValue: '<secret>'}),
    scope: Flags.string({summary: 'Scopes to request, space-separated (default: identity.scopes from the config).', helpValue: '<scopes>'}),
  }

  async run(): Promise<Identity & {storedIn: string}> {
    const {flags} = await this.parse(Login)
    const io = processIO()
    // Service credentials given as flags count as the person's own, like those in the environment.
    const service = flags['client-credentials'] ? {DBGATE_CLIENT_ID: flags['client-id'], DBGATE_CLIENT_SECRET: flags['client-secret']} : {}
    const config = await identityConfigFrom(await loadCommandConfig(flags, this), {...io.env, ...service})
    const scopes = flags.scope?.split(/\s+/).filter(Boolean)
    let credentials
    if (flags['client-credentials']) {
      if (!flags['client-id'] || !flags['client-secret']) {
        throw new UsageError('--client-credentials needs --client-id and --client-secret (or DBGATE_CLIENT_ID and DBGATE_CLIENT_SECRET).')
      }
      const request = serviceRequestFromEnv(io.env)
      credentials = {...request, clientId: flags['client-id'], clientSecret: flags['client-secret'], scope: scopes?.join(' ') ?? request.scope}
    }
    const interrupt = interruptSignal()
    try {
      const {identity, storedIn} = await runLogin(config, {io, browser: flags.browser, service: credentials, scopes, signal: interrupt.signal})
      const who = identity.email ?? identity.subject
      // The IdP's claims, shown as text: a display name people set themselves may carry escapes.
      this.log(visible(`Signed in as ${who}${identity.kind === 'service' ? ' (service identity)' : ''}; groups: ${identity.groups.join(', ') || 'none'}.`))
      this.logToStderr(`Tokens stored in ${storedIn}.`)
      return {...identity, storedIn}
    } finally {
      interrupt.dispose()
    }
  }
}
