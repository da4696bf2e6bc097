/**
 * How the tour reaches approvals: through the `dbgate approvals list` and `dbgate approve`
 * commands where this build has them, as a reviewer would, or else through the approvals core
 * those commands call. Either way the decision is sealed to the waiting tunnel, which verifies it.
 */
import {ApprovalError} from '../approvals/errors.js'
import {decide, listForReviewer, reviewerFromSession, type ReviewContext} from '../approvals/review.js'
import {gatewayCertificate} from '../gateway/client.js'
import {openBucket} from '../bucket/index.js'
import {loadConfig} from '../config/load.js'
import {identityConfigFrom} from '../identity/cli.js'
import {getIdentity} from '../identity/session.js'
import {openTokenStore} from '../identity/token-store.js'
import type {CliRunner} from './cli.js'
import type {DemoPerson} from './demo.js'
import {oneLine} from './steps.js'

export type DecisionReply = {ok: true; said: string} | {ok: false; said: string}

export interface DemoApprovals {
  /** For step titles: `dbgate approve` or `the approvals core`. */
  via: string
  listVia: string
  /** Ids of the requests this person may decide now. */
  pending(p: DemoPerson): Promise<string[]>
  approve(p: DemoPerson, id: string, reason?: string): Promise<DecisionReply>
}

export function cliApprovals(cli: CliRunner, configPath: string): DemoApprovals {
  const config = ['--config', configPath]
  return {
    via: '`dbgate approve`',
    listVia: '`dbgate approvals list`',
    async pending(p) {
      const r = await cli.run(['approvals', 'list', '--json', ...config], p.env)
      if (r.code !== 0) throw new Error(`\`dbgate approvals list\` exited with ${r.code}: ${oneLine(r.stderr, 160)}`)
      return (JSON.parse(r.stdout) as {id: string; state: string}[]).filter((x) => x.state === 'pending').map((x) => x.id)
    },
    async approve(p, id, reason) {
      const r = await cli.run(['approve', id, ...(reason ? ['--reason', reason] : []), ...config], p.env)
      if (r.code === 0) return {ok: true, said: oneLine(r.stdout)}
      return {ok: false, said: `exit ${r.code}: ${oneLine(errorText(r.stderr))}`}
    },
  }
}

/** dbgate prints an error as `Error: …` followed by `Code:` and `Try this:` lines: all of it as one line. */
function errorText(stderr: string): string {
  const text = stderr.split('\n').join(' ')
  const at = text.indexOf('Error:')
  return at >= 0 ? text.slice(at + 'Error:'.length) : text
}

export function coreApprovals(configPath: string): DemoApprovals {
  const context = async (p: DemoPerson): Promise<ReviewContext> => {
    const loaded = await loadConfig({configPath})
    const session = await getIdentity(await identityConfigFrom(loaded, p.env), {env: p.env, store: openTokenStore({env: p.env})})
    const gw = loaded.config.gateway
    return {bucket: openBucket(loaded.config.bucket), config: loaded.config, reviewer: reviewerFromSession(session), ...(gw ? {gatewayCertificate: () => gatewayCertificate(gw)} : {})}
  }
  return {
    via: 'the approvals core',
    listVia: 'the approvals core',
    async pending(p) {
      return (await listForReviewer(await context(p))).map((v) => v.request.id)
    },
    async approve(p, id, reason) {
      try {
        const {decision} = await decide(await context(p), {id, action: 'approve', reason})
        return {ok: true, said: `${decision.reviewer.email ?? decision.reviewer.subject} approved ${id}`}
      } catch (error) {
        if (error instanceof ApprovalError) return {ok: false, said: `${error.code}: ${oneLine(error.message)}`}
        throw error
      }
    },
  }
}
