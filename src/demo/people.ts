/** Who takes part in the tour, and the configuration they all share. */
import {DEV_USERS} from '../dev/oidc-dev-provider.js'

export const DEMO_TARGET = 'shop'
/** The database role the tunnel connects as: owner of the shop, not a superuser. */
export const DEMO_ROLE = 'shop_app'
export const DEMO_ALLOW = ['engineering', 'dba']
export const DEMO_REVIEWERS = ['dba']
/** The statement the tour has approved: DDL, which the built-in pack holds for a reviewer. */
export const DEMO_DDL = 'create index orders_placed_at_idx on orders (placed_at)'

export type DemoRole = 'engineer' | 'reviewer' | 'auditor'

export interface DemoPersonSpec {
  /** User name at the development provider; also their password there. */
  user: string
  role: DemoRole
  email: string
  groups: string[]
}

const ROLES: Record<string, DemoRole> = {alice: 'engineer', bob: 'reviewer', carol: 'auditor'}

/** The development provider's own users, so the tour and the provider can never disagree on groups. */
export const DEMO_PEOPLE: readonly DemoPersonSpec[] = DEV_USERS.filter((u) => ROLES[u.id]).map((u) => ({
  user: u.id,
  role: ROLES[u.id]!,
  email: u.email,
  groups: [...u.groups],
}))

/** The name of the demo's gateway: its signing key is published under it, and auditors name it (`--signer`). */
export const DEMO_GATEWAY = 'demo-gateway'

export interface DemoGatewayConfigInput {
  issuer: string
  clientId: string
  bucketUrl: string
  database: {host: string; port: number; user: string}
  passwordFile: string
  tls: {cert: string; key: string}
  stateDir: string
}

/**
 * The gateway's configuration: the only place that knows where the database is and its password.
 * The same shape a real gateway.yaml has, pointed at throwaway local parts.
 */
export function demoGatewayYaml(c: DemoGatewayConfigInput): string {
  return [
    '# Written by `dbgate demo` for its gateway; removed when the demo stops.',
    'server:',
    `  name: ${DEMO_GATEWAY}`,
    '  listen: 127.0.0.1:0',
    `  tls: {cert: ${c.tls.cert}, key: ${c.tls.key}}`,
    '  api: 127.0.0.1:0',
    `  stateDir: ${c.stateDir}`,
    // A person's recording ships once their pipeline is disposed: soon after their last session, so
    // the auditor sees it within seconds.
    '  pipelineIdle: 1s',
    'identity:',
    '  # The DEVELOPMENT identity provider started by `dbgate demo`: fixed users, plain HTTP,',
    '  # keys in memory. Never point a real dbgate at it.',
    `  issuer: ${c.issuer}`,
    `  clientId: ${c.clientId}`,
    `bucket: ${c.bucketUrl}`,
    'targets:',
    `  ${DEMO_TARGET}:`,
    `    host: ${c.database.host}`,
    `    port: ${c.database.port}`,
    `    database: ${DEMO_TARGET}`,
    `    user: ${c.database.user}`,
    `    password: file:${c.passwordFile}`,
    '    tls: disable',
    `    allow: [${DEMO_ALLOW.join(', ')}]`,
    `    reviewers: [${DEMO_REVIEWERS.join(', ')}]`,
    '',
  ].join('\n')
}

export interface DemoConfigInput {
  issuer: string
  clientId: string
  bucketUrl: string
  gateway: {address: string; api: string; ca: string}
}

/**
 * The people's dbgate.yaml: who signs them in, where the gateway is and the CA that signed its
 * certificate, and the bucket auditors read. No targets and no database password: the gateway holds them.
 */
export function demoConfigYaml(c: DemoConfigInput): string {
  return [
    '# Written by `dbgate demo`; removed when the demo stops.',
    'identity:',
    '  # The DEVELOPMENT identity provider started by `dbgate demo`: fixed users, plain HTTP,',
    '  # keys in memory. Never point a real dbgate at it.',
    `  issuer: ${c.issuer}`,
    `  clientId: ${c.clientId}`,
    'gateway:',
    `  address: ${c.gateway.address}`,
    `  ca: ${c.gateway.ca}`,
    `  api: ${c.gateway.api}`,
    `bucket: ${c.bucketUrl}`,
    '',
  ].join('\n')
}
