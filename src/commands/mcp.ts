import {Args, Flags} from '@oclif/core'
import {loadCommandConfig} from '../cli/config.js'
import {DbgateCommand} from '../cli/base-command.js'
import {visible} from '../util/visible.js'
import {configFlag} from '../cli/flags.js'
import {getTarget} from '../config/targets.js'
import {dbgateVersion} from '../connect/recording.js'
import {openLocalEndpoint} from '../mcp/local-endpoint.js'
import {requireTrustedTarget} from '../config/trust.js'
import {createDbgateMcp} from '../mcp/server.js'
import {AgentStdioTransport} from '../mcp/stdio.js'
import {describeRelease, idleMemoryReleaseWanted, startIdleMemoryRelease} from '../runtime/idle-memory.js'

export default class Mcp extends DbgateCommand {
  static override summary = 'Serve a target to an AI agent over the Model Context Protocol (stdio).'
  static override description = `Runs an MCP server on stdin/stdout for an agent (Claude Code, Claude Desktop, Cursor, …) to launch.
Its tools (list_schemas, list_tables, describe_table, query, explain, approval_status) run SQL through
the same tunnel as \`dbgate connect\`: your sign-in (or DBGATE_CLIENT_ID/DBGATE_CLIENT_SECRET for a
service identity), the target's policy, approvals, masking and recording. Sessions are recorded as the
agent's, for you. Agents are read-only unless the target sets mcp.mode: read-write. When dbgate.yaml
names a gateway, the tools run on the gateway (its remote MCP endpoint, with your sign-in), which
enforces everything; nothing runs locally. See docs/agents.md.`
  static override examples = ['$ claude mcp add dbgate-prod -- dbgate mcp prod', '$ dbgate mcp prod --config ~/work/dbgate.yaml']
  static override args = {target: Args.string({description: 'Target name from dbgate.yaml, or one the gateway serves (see dbgate targets).', required: true})}
  static override flags = {
    config: configFlag,
    verbose: Flags.boolean({char: 'v', summary: 'Log each tool error and tunnel event to stderr.'}),
    'local-policy': Flags.boolean({summary: "Run the local file's policy even where the bucket has a published one (recorded in every session)."}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Mcp)
    idleMemoryReleaseWanted()
    // An agent starts this command from its MCP configuration, which a repository can carry
    // (.mcp.json with DBGATE_CONFIG=./dbgate.yaml): the file it names was not named by the person,
    // so it needs their trust before their sign-in or passwords go where it says.
    const loaded = {...(await loadCommandConfig(flags, this)), namedByLauncher: true}
    // stdout carries the protocol: everything for people goes to stderr.
    const log = (level: 'info' | 'warn' | 'error', message: string) => {
      if (level === 'info' && !flags.verbose) return
      process.stderr.write(`dbgate mcp: ${level === 'info' ? '' : `${level}: `}${visible(message, {lines: true})}\n`)
    }
    const gateway = loaded.config.gateway
    if (gateway) {
      // A line the bridge cannot carry is answered here; a tools/call in it is recorded at the gateway.
      const agent = new AgentStdioTransport()
      // The agent ends the session by closing stdin (the SDK's stdio transport does not notice) or by a signal.
      const stop = () => void agent.close()
      process.stdin.on('end', stop)
      process.on('SIGINT', stop)
      process.on('SIGTERM', stop)
      // The bridge (and the OIDC it signs in with) loads only for a gateway; a local agent's tunnel never needs it.
      const {runGatewayBridge} = await import('../mcp/gateway-bridge.js')
      await runGatewayBridge({loaded, gateway, targetName: args.target, agent, log})
      return
    }
    const target = getTarget(loaded.config, args.target)
    // Refused now, not at the agent's first call: an untrusted ./dbgate.yaml must not have this target dialled.
    await requireTrustedTarget(loaded, target)
    // This process runs the agent's tunnel: it gives memory back once the agent goes quiet (-v logs it).
    startIdleMemoryRelease({onRelease: (r) => log('info', describeRelease(r))})
    const mcp = createDbgateMcp({
      target,
      version: dbgateVersion(),
      log,
      openEndpoint: (agent) => openLocalEndpoint({loaded, targetName: target.name, agent, log, localPolicy: flags['local-policy']}),
    })
    const transport = new AgentStdioTransport()
    transport.onrefused = (value, what) => {
      log('info', `refused from the agent: ${what}`)
      return mcp.refuseMessage(value, what)
    }
    const done = new Promise<void>((resolve) => {
      let closing = false
      const shutdown = () => {
        if (closing) return
        closing = true
        mcp.close().then(resolve, (e: Error) => {
          log('error', `closing: ${e.message}`)
          resolve()
        })
      }
      transport.onclose = shutdown
      process.stdin.on('end', shutdown)
      process.on('SIGINT', shutdown)
      process.on('SIGTERM', shutdown)
    })
    await mcp.server.connect(transport)
    await done
  }
}
