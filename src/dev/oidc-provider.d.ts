// oidc-provider ships no type declarations; this covers only what the development provider uses.
declare module 'oidc-provider' {
  import type {IncomingMessage, ServerResponse} from 'node:http'

  export interface KoaContext {
    method: string
    path: string
    status: number
    body: unknown
    type: string
    req: IncomingMessage
    res: ServerResponse
    redirect(url: string): void
    set(field: string, value: string): void
  }
  export type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>

  export interface InteractionDetails {
    uid: string
    prompt: {name: string; details: Record<string, unknown>}
    params: Record<string, unknown> & {client_id: string}
    session?: {accountId?: string}
    grantId?: string
  }

  export interface Grant {
    addOIDCScope(scope: string): void
    addOIDCClaims(claims: string[]): void
    addResourceScope(indicator: string, scope: string): void
    save(): Promise<string>
  }

  export class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>)
    issuer: string
    proxy: boolean
    use(fn: Middleware): this
    callback(): (req: IncomingMessage, res: ServerResponse) => void
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>
    interactionResult(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, options?: {mergeWithLastSubmission?: boolean}): Promise<string>
    Grant: {new (init: {accountId: string; clientId: string}): Grant; find(id: string): Promise<Grant | undefined>}
    on(event: string, listener: (...args: unknown[]) => void): this
  }
  export const errors: Record<string, new (description?: string) => Error>
  export default Provider
}

declare module 'oidc-provider/lib/adapters/memory_adapter.js' {
  /** A memory adapter with its own store (the default one is shared by every provider in the process). */
  export function createMemoryAdapter(clockTolerance?: number): (model: string) => unknown
}

declare module 'oidc-provider/lib/helpers/user_codes.js' {
  /** The user code as oidc-provider stores it: upper case, without separators. */
  export function normalize(code: string): string
}
