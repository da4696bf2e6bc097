import {Args, Flags} from '@oclif/core'
import {loadOrCreateInstallationKey, publishKey} from '../../audit/signing.js'
import {openBucket} from '../../bucket/index.js'
import {publishPolicy} from '../../policy/published.js'
import {loadCommandConfig} from '../../cli/config.js'
import {UsageError} from '../../cli/errors.js'
import {configFlag} from '../../cli/flags.js'
import {getTarget} from '../../config/targets.js'
import {unverifiedIdentity} from '../../connect/recording.js'
import {identityConfigFrom} from '../../identity/cli.js'
import {getIdentity} from '../../identity/session.js'
import {openTokenStore} from '../../identity/token-store.js'
import {lintRules} from '../../policy/index.js'
import {DbgateCommand} from '../../cli/base-command.js'
import {visible} from '../../util/visible.js'

export interface PublishedSummary {
  target: string
  version: number
  hash: string
  key: string
}

export default class PolicyPublish extends DbgateCommand {
  static override summary = "Publish targets' policy to the bucket, signed and versioned, so every tunnel runs it."
  static override description =
    "Publishes each target's policy, rules, allow and reviewer groups, masking and approval settings (not its connection details) as the next version under policies/<target>/ in the bucket, signed by this machine's key and your identity. Tunnels then run the published policy instead of their local file's, unless started with --local-policy, which every session records. Rules are linted first; a rule with an error stops the publish."
  static override examples = ['$ dbgate policy publish prod', '$ dbgate policy publish --all']
  static override enableJsonFlag = true
  static override strict = false
  static override args = {target: Args.string({description: 'Target(s) to publish.'})}
  static override flags = {
    config: configFlag,
    all: Flags.boolean({summary: 'Publish every target in the configuration.'}),
  }

  async run(): Promise<PublishedSummary[]> {
    const {argv, flags} = await this.parse(PolicyPublish)
    const names = argv as string[]
    if (!flags.all && names.length === 0) throw new UsageError('name the target(s) to publish, or use --all')
    const loaded = await loadCommandConfig(flags, this)
    const targets = flags.all ? Object.values(loaded.config.targets) : names.map((n) => getTarget(loaded.config, n))
    const problems = targets.flatMap((t) => lintRules(t.rules, t.policy).filter((i) => i.severity === 'error').map((i) => `${t.name}: rule ${i.ruleId}: ${i.message}`))
    if (problems.length > 0) throw new Error(`not published: fix these rules first\n${problems.join('\n')}`)

    const publisher = loaded.config.identity
      ? (await getIdentity(await identityConfigFrom(loaded), {store: openTokenStore({warn: (m) => this.warning(m)})})).identity
      : unverifiedIdentity()
    const bucket = openBucket(loaded.config.bucket)
    const key = await loadOrCreateInstallationKey()
    await publishKey(bucket, publisher, key)
    const out: PublishedSummary[] = []
    for (const target of targets) {
      const doc = await publishPolicy(bucket, target, publisher, key)
      out.push({target: target.name, version: doc.version, hash: doc.hash, key: `policies/${target.name}/v${String(doc.version).padStart(6, '0')}.json`})
      // The e-mail or subject is the token's: text the IdP or its user chose, not ours to print raw.
      this.log(`published ${target.name} v${doc.version} (sha256 ${doc.hash.slice(0, 12)}…) as ${visible(publisher.email ?? publisher.subject)}`)
    }
    return out
  }
}
