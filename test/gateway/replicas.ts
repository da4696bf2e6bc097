import {spawn, type ChildProcess} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {mkdir, readdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import pg from 'pg'
import {parseConfigText} from '../../src/config/parse.js'
import type {LoadedConfig} from '../../src/config/types.js'
import {spoolDir} from '../../src/util/paths.js'
import type {TestS3} from '../audit/s3rver.js'
import type {TestPki} from './helpers.js'

const BIN = path.resolve('bin/run.js')

/** The environment a replica (and an auditor's CLI) needs for the s3rver bucket. */
export const S3_ENV = {AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1'}

export interface ReplicaSpec {
  /** Directory of this replica: its configuration file and its state (keys, spool, caches). */
  dir: string
  pki: TestPki
  s3: TestS3
  issuer: string
  clientId: string
  targets: string[]
  server?: string[]
  /** Top-level lines, e.g. a `tunnel:` section. */
  top?: string[]
}

/**
 * The configuration file of one replica. Replicas are identical but for their own state directory:
 * they share only the bucket (s3rver), as behind any TCP load balancer.
 */
export async function writeReplicaConfig(spec: ReplicaSpec): Promise<string> {
  await mkdir(spec.dir, {recursive: true})
  const text = [
    'server:',
    '  name: gw-ha',
    '  listen: 127.0.0.1:0',
    `  tls: {cert: ${spec.pki.cert}, key: ${spec.pki.key}}`,
    `  stateDir: ${path.join(spec.dir, 'state')}`,
    '  ops: 127.0.0.1:0',
    ...(spec.server ?? []).map((l) => `  ${l}`),
    'identity:',
    `  issuer: ${spec.issuer}`,
    `  clientId: ${spec.clientId}`,
    'bucket:',
    `  url: s3://${spec.s3.bucketName}/dbgate`,
    `  endpoint: ${spec.s3.endpoint}`,
    '  forcePathStyle: true',
    '  region: us-east-1',
    ...(spec.top ?? []),
    'targets:',
    ...spec.targets,
    '',
  ].join('\n')
  const file = path.join(spec.dir, 'gateway.yaml')
  await writeFile(file, text)
  return file
}

export function loadReplicaConfig(file: string, env: NodeJS.ProcessEnv): LoadedConfig {
  return {path: file, ...parseConfigText(readFileSync(file, 'utf8'), file, {env, homeDir: env.HOME})}
}

/** The spool of a replica's recordings (the gateway keeps its state under server.stateDir). */
export function replicaSpoolDir(dir: string): string {
  return spoolDir({XDG_STATE_HOME: path.join(dir, 'state', 'state')})
}

/** Session logs waiting in a replica's spool. */
export async function spooledLogs(dir: string): Promise<string[]> {
  const names = await readdir(replicaSpoolDir(dir)).catch(() => [] as string[])
  return names.filter((n) => n.endsWith('.jsonl')).sort()
}

export async function spooledText(dir: string, name: string): Promise<string> {
  return readFile(path.join(replicaSpoolDir(dir), name), 'utf8')
}

export interface Replica {
  port: number
  keyId: string
  child: ChildProcess
  /** What it wrote to stderr so far (its log). */
  log(): string
  /** Resolves with the exit code or signal once the process has gone. */
  exited: Promise<string>
  /** SIGTERM, and waits for it to go. */
  stop(): Promise<string>
}

/** `dbgate gateway --config FILE` as its own process, once it says where it listens. */
export function startReplica(configFile: string, env: NodeJS.ProcessEnv): Promise<Replica> {
  const child = spawn(process.execPath, [BIN, 'gateway', '--config', configFile, '--verbose', '--workers', '1'], {env: {...process.env, ...env, NO_COLOR: '1'}, stdio: ['ignore', 'pipe', 'pipe']})
  let out = ''
  let err = ''
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? String(code))))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the gateway did not start in time:\n${err}`))
    }, 60_000)
    child.stderr!.on('data', (d: Buffer) => (err += d))
    child.stdout!.on('data', (d: Buffer) => {
      out += d
      // The gateway logs JSON lines; the one saying it is ready names its address and signing key.
      const ready = out
        .split('\n')
        .map((l) => {
          try {
            return JSON.parse(l) as {msg?: string; address?: {port: number}; signingKeyId?: string}
          } catch {
            return undefined
          }
        })
        .find((l) => l?.msg?.includes('ready to accept'))
      if (!ready?.address || !ready.signingKeyId) return
      clearTimeout(timer)
      resolve({
        port: ready.address.port,
        keyId: ready.signingKeyId,
        child,
        log: () => out + err,
        exited,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
          return exited
        },
      })
    })
    void exited.then((how) => {
      clearTimeout(timer)
      reject(new Error(`the gateway exited (${how}) before it listened:\n${err}`))
    })
  })
}

/** A node-postgres client of a replica, signing in with `token` over verify-full TLS. */
export function replicaClient(port: number, pki: TestPki, user: string, token: string, database = 'app'): pg.Client {
  return new pg.Client({host: '127.0.0.1', port, database, user, password: token, ssl: {ca: readFileSync(pki.ca, 'utf8'), servername: 'localhost'}})
}
