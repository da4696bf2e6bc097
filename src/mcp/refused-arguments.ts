/**
 * What the recording keeps of a tools/call that was refused (an mcp.tool_refused event's arguments),
 * apart from the MCP server so that dbgate mcp in front of a gateway, which runs no tools, can make a
 * call it refused small enough to send on to the gateway without loading them.
 */

/** The most of a refused call's SQL the recording keeps, as of a statement the tunnel refused for its size. */
const REFUSED_SQL_KEPT = 64 * 1024
/** The most of any other string argument, or of an argument's or tool's name, the recording keeps. */
export const REFUSED_STRING_KEPT = 200
/** Arguments the tools take whose values are recorded; `params` only by how many, others only by name. */
const RECORDED_ARGUMENTS = new Set(['sql', 'maxRows', 'maxBytes', 'timeoutMs', 'analyze', 'table', 'schema', 'approvalId', 'waitSeconds'])

/** How `keep` ends a text it cut. */
const CUT_MARK = /…\[cut, \d+ bytes in all\]$/

export function keep(text: string, max: number): string {
  if (text.length <= max) return text
  // Cut once already, by dbgate mcp before it sent a refused call on to the gateway: cut again, it
  // would say how long the cut text was, not how long the agent's was.
  const mark = CUT_MARK.exec(text)
  if (mark && mark.index <= max) return text
  let end = max
  const last = text.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end--
  return `${text.slice(0, end)}…[cut, ${Buffer.byteLength(text)} bytes in all]`
}

/**
 * A refused call's arguments as the recording keeps them: what an auditor needs to see what the agent
 * tried (its SQL, its caps), and nothing a value could hide a secret in. Bind parameters are counted,
 * not kept (masking cannot tell where a refused statement would have put them), and an argument no
 * tool takes is named, not kept.
 */
export function recordedArguments(args: unknown): Record<string, unknown> {
  if (typeof args !== 'object' || args === null || Array.isArray(args)) return args === undefined ? {} : {given: Array.isArray(args) ? 'array' : typeof args}
  const out: Record<string, unknown> = {}
  const others: string[] = []
  for (const [name, value] of Object.entries(args)) {
    if (name === 'params') out.params = Array.isArray(value) ? value.length : typeof value
    else if (!RECORDED_ARGUMENTS.has(name)) {
      if (others.length < 20) others.push(keep(name, REFUSED_STRING_KEPT))
    } else if (typeof value === 'string') out[name] = keep(value, name === 'sql' ? REFUSED_SQL_KEPT : REFUSED_STRING_KEPT)
    else if (typeof value === 'number' || typeof value === 'boolean' || value === null) out[name] = value
    else out[name] = Array.isArray(value) ? 'array' : typeof value
  }
  if (others.length) out.otherArguments = others
  return out
}

/** The largest request body the gateway's remote MCP endpoint reads. */
const MAX_FORWARDED_BYTES = 1024 * 1024

/**
 * A tools/call message dbgate mcp refused, made small enough for the gateway to take (a stdio line
 * may be 10 MiB, a request body 1 MiB) without changing what `refuseMessage` records of it there:
 * strings are cut as the recording cuts them, and bind parameters keep only how many there were (up to 100,000).
 */
export function forwardableRefusal(value: unknown): unknown {
  if (Buffer.byteLength(JSON.stringify(value) ?? '') <= MAX_FORWARDED_BYTES / 2) return value
  // Only what the record is made of: the method and params (an id or other members could be megabytes).
  const call = {jsonrpc: '2.0', method: 'tools/call'}
  const params = (value as {params?: unknown}).params
  if (typeof params !== 'object' || params === null || Array.isArray(params)) return {...call, params: Array.isArray(params) ? [] : typeof params === 'string' ? '' : params}
  const {name, arguments: args} = params as {name?: unknown; arguments?: unknown}
  const small = (v: unknown, max: number): unknown => (typeof v === 'string' ? keep(v, max) : Array.isArray(v) ? [] : typeof v === 'object' && v !== null ? {} : v)
  let kept: unknown = small(args, REFUSED_STRING_KEPT)
  if (typeof args === 'object' && args !== null && !Array.isArray(args)) {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(args).slice(0, 40)) {
      out[keep(k, REFUSED_STRING_KEPT)] = k === 'params' && Array.isArray(v) ? new Array<number>(Math.min(v.length, 100_000)).fill(0) : small(v, k === 'sql' ? REFUSED_SQL_KEPT : REFUSED_STRING_KEPT)
    }
    kept = out
  }
  return {...call, params: {name: small(name, REFUSED_STRING_KEPT), arguments: kept}}
}
