/**
 * Two libraries dbgate runs on Node 20 announce that they want Node 22: oidc-provider (only in the
 * development IdP of the demo and the tests) with a console.warn when it is first imported, and the
 * AWS SDK with a NodeVersionSupportWarning when an S3 client is built. dbgate supports Node 20.19+
 * and says so; these two messages, and only these, are kept from the person's terminal.
 */

const OIDC_PROVIDER_RUNTIME = /^(\x1b\[[\d;]*m)?oidc-provider WARNING: Unsupported runtime\. Use Node\.js v22/

/** Runs `load` (an import) with exactly oidc-provider's runtime warning filtered from console.warn. */
export async function withoutRuntimeWarning<T>(load: () => Promise<T>): Promise<T> {
  const warn = console.warn
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && OIDC_PROVIDER_RUNTIME.test(args[0])) return
    warn.apply(console, args)
  }
  try {
    return await load()
  } finally {
    console.warn = warn
  }
}

/**
 * Builds something with the AWS SDK's own opt-out of its Node-version warning set for the moment
 * (AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED, read once per process), so child processes
 * and every other warning are untouched.
 */
export function withoutAwsNodeVersionWarning<T>(build: () => T): T {
  const name = 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'
  const before = process.env[name]
  process.env[name] = 'true'
  try {
    return build()
  } finally {
    if (before === undefined) delete process.env[name]
    else process.env[name] = before
  }
}
