import {randomBytes} from 'node:crypto'
import type {PutObjectCommandInput, S3Client, S3ClientConfig} from '@aws-sdk/client-s3'
import {
  BucketError,
  BUCKET_ACCESS_DENIED,
  BUCKET_BAD_URL,
  BUCKET_ERROR,
  BUCKET_NOT_FOUND,
  BUCKET_UNREACHABLE,
  checkKey,
  CONDITIONAL_WRITE_UNSUPPORTED,
  OBJECT_EXISTS,
  OBJECT_NOT_FOUND,
} from './errors.js'
import type {Bucket, BucketConfig, GetResult, ObjectInfo, ObjectLockOptions, PutOptions} from './types.js'
import {withoutAwsNodeVersionWarning} from '../util/quiet-warnings.js'

export interface S3BucketOptions extends Omit<BucketConfig, 'url'> {
  /** Only for tests and embedding; otherwise the standard AWS chain (env, profile, SSO, IMDS) applies. */
  credentials?: S3ClientConfig['credentials']
  maxAttempts?: number
}

/** `s3://bucket/some/prefix` → its parts. */
export function parseS3Url(url: string): {bucket: string; prefix: string} {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url)
  if (!m || !m[1]) throw new BucketError(BUCKET_BAD_URL, `not an s3 URL: ${redactUrl(url)} (expected s3://bucket/prefix)`)
  const prefix = m[2]!.replace(/\/+$/, '')
  return {bucket: m[1], prefix: prefix ? prefix + '/' : ''}
}

type Sdk = typeof import('@aws-sdk/client-s3')
let sdk: Promise<Sdk> | undefined
/**
 * The SDK takes about 20 MB of resident memory: it loads with the first request to a bucket, not
 * with every process that could ship (a tunnel whose bucket is a directory never loads it).
 */
const loadSdk = (): Promise<Sdk> => (sdk ??= import('@aws-sdk/client-s3'))

export class S3Bucket implements Bucket {
  readonly url: string
  private readonly config: S3ClientConfig
  private client?: S3Client
  private readonly name: string
  private readonly prefix: string
  private readonly objectLock?: ObjectLockOptions
  private readonly conditional: 'native' | 'probe'
  private probed?: Promise<boolean>

  constructor(url: string, opts: S3BucketOptions = {}) {
    const {bucket, prefix} = parseS3Url(url)
    this.name = bucket
    this.prefix = prefix
    this.url = `s3://${bucket}/${prefix}`
    this.objectLock = opts.objectLock
    this.conditional = opts.conditionalWrites ?? 'native'
    this.config = {
      region: opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      endpoint: opts.endpoint,
      forcePathStyle: opts.forcePathStyle,
      credentials: opts.credentials,
      maxAttempts: opts.maxAttempts ?? 3,
      // A dead endpoint must fail fast enough for the shipper's own backoff to take over.
      requestHandler: {connectionTimeout: 5_000, requestTimeout: 60_000},
    }
  }

  /** The SDK and this bucket's client, made on first use. */
  private async s3(): Promise<{client: S3Client; sdk: Sdk}> {
    const m = await loadSdk()
    this.client ??= withoutAwsNodeVersionWarning(() => new m.S3Client(this.config))
    return {client: this.client, sdk: m}
  }

  private full(key: string): string {
    checkKey(key)
    return this.prefix + key
  }

  async put(key: string, body: Buffer | string, opts: PutOptions = {}): Promise<ObjectInfo> {
    const Key = this.full(key)
    const buf = typeof body === 'string' ? Buffer.from(body) : body
    if (opts.ifNoneMatch && this.conditional === 'probe' && !(await this.supportsConditionalWrites())) {
      throw new BucketError(
        CONDITIONAL_WRITE_UNSUPPORTED,
        `${this.url} ignores If-None-Match on PUT, so create-exclusive writes cannot be guaranteed; use a store with conditional writes (AWS S3, R2, MinIO ≥ 2024-08)`,
        {key},
      )
    }
    const input: PutObjectCommandInput = {
      Bucket: this.name,
      Key,
      Body: buf,
      ContentType: opts.contentType,
      ContentEncoding: opts.contentEncoding,
      IfNoneMatch: opts.ifNoneMatch ? '*' : undefined,
    }
    if (this.objectLock) {
      input.ObjectLockMode = this.objectLock.mode
      input.ObjectLockRetainUntilDate = new Date(Date.now() + this.objectLock.days * 86_400_000)
    }
    try {
      const {client, sdk} = await this.s3()
      const out = await client.send(new sdk.PutObjectCommand(input))
      return {key, size: buf.length, etag: unquote(out.ETag) ?? '', lastModified: new Date()}
    } catch (err) {
      throw this.wrap(err, key)
    }
  }

  async get(key: string): Promise<GetResult> {
    try {
      const {client, sdk} = await this.s3()
      const out = await client.send(new sdk.GetObjectCommand({Bucket: this.name, Key: this.full(key)}))
      const body = Buffer.from(await out.Body!.transformToByteArray())
      return {
        body,
        info: {key, size: body.length, etag: unquote(out.ETag) ?? '', lastModified: out.LastModified ?? new Date(0)},
      }
    } catch (err) {
      throw this.wrap(err, key)
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const {client, sdk} = await this.s3()
      const out = await client.send(new sdk.HeadObjectCommand({Bucket: this.name, Key: this.full(key)}))
      return {key, size: out.ContentLength ?? 0, etag: unquote(out.ETag) ?? '', lastModified: out.LastModified ?? new Date(0)}
    } catch (err) {
      const e = this.wrap(err, key)
      if (e.code === OBJECT_NOT_FOUND) return undefined
      throw e
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let ContinuationToken: string | undefined
    do {
      let out
      try {
        const {client, sdk} = await this.s3()
        out = await client.send(
          new sdk.ListObjectsV2Command({Bucket: this.name, Prefix: this.prefix + prefix, ContinuationToken}),
        )
      } catch (err) {
        throw this.wrap(err, undefined)
      }
      for (const o of out.Contents ?? []) {
        if (!o.Key) continue
        yield {
          key: o.Key.slice(this.prefix.length),
          size: o.Size ?? 0,
          etag: unquote(o.ETag) ?? '',
          lastModified: o.LastModified ?? new Date(0),
        }
      }
      ContinuationToken = out.IsTruncated ? out.NextContinuationToken : undefined
    } while (ContinuationToken)
  }

  async delete(key: string): Promise<void> {
    try {
      const {client, sdk} = await this.s3()
      await client.send(new sdk.DeleteObjectCommand({Bucket: this.name, Key: this.full(key)}))
    } catch (err) {
      const e = this.wrap(err, key)
      if (e.code !== OBJECT_NOT_FOUND) throw e
    }
  }

  /**
   * Writes a throwaway object twice with If-None-Match; a store that honours the header refuses
   * the second write. Cached for the life of the bucket object.
   */
  supportsConditionalWrites(): Promise<boolean> {
    this.probed ??= (async () => {
      const key = `.dbgate/probe/${randomBytes(8).toString('hex')}`
      const Key = this.full(key)
      const put = async () => {
        const {client, sdk} = await this.s3()
        return client.send(new sdk.PutObjectCommand({Bucket: this.name, Key, Body: 'probe', IfNoneMatch: '*'}))
      }
      try {
        await put()
        try {
          await put()
          return false
        } catch (err) {
          const e = this.wrap(err, key)
          if (e.code === OBJECT_EXISTS) return true
          throw e
        }
      } catch (err) {
        this.probed = undefined
        throw this.wrap(err, key)
      } finally {
        await this.s3()
          .then(({client, sdk}) => client.send(new sdk.DeleteObjectCommand({Bucket: this.name, Key})))
          .catch(() => undefined)
      }
    })()
    return this.probed
  }

  close(): void {
    this.client?.destroy()
  }

  private wrap(err: unknown, key: string | undefined): BucketError {
    if (err instanceof BucketError) return err
    const e = err as {name?: string; Code?: string; code?: string; $metadata?: {httpStatusCode?: number}; message?: string}
    const status = e.$metadata?.httpStatusCode
    const name = e.name ?? e.Code ?? 'Error'
    const cause = {name, code: e.code, status}
    const where = key ? `${this.url}${key}` : this.url
    if (status === 412 || name === 'PreconditionFailed' || name === 'ConditionalRequestConflict') {
      return new BucketError(OBJECT_EXISTS, `object ${key} already exists in ${this.url}`, {key, cause})
    }
    if (status === 501 && key !== undefined) {
      return new BucketError(CONDITIONAL_WRITE_UNSUPPORTED, `${this.url} does not support conditional writes`, {key, cause})
    }
    if (name === 'NoSuchBucket') return new BucketError(BUCKET_NOT_FOUND, `bucket ${this.name} does not exist (${this.url})`, {key, cause})
    if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
      return new BucketError(OBJECT_NOT_FOUND, `object ${where} not found`, {key, cause})
    }
    if (status === 403 || name === 'AccessDenied' || name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch') {
      return new BucketError(BUCKET_ACCESS_DENIED, `access denied to ${where} (${name}); check the AWS credentials in use`, {key, cause})
    }
    if (name === 'CredentialsProviderError') {
      return new BucketError(BUCKET_ACCESS_DENIED, `no AWS credentials for ${this.url}: set AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where an instance or SSO role is available`, {key, cause})
    }
    if (status === undefined || status >= 500 || status === 429 || name === 'SlowDown' || name === 'TimeoutError') {
      const code = (e as {code?: string}).code
      return new BucketError(BUCKET_UNREACHABLE, `cannot reach ${this.url}: ${code ?? name}`, {key, cause, retryable: true})
    }
    return new BucketError(BUCKET_ERROR, `${where}: ${name} (HTTP ${status})`, {key, cause})
  }
}

function unquote(etag: string | undefined): string | undefined {
  return etag?.replace(/^"|"$/g, '')
}

/** Strips any userinfo, in case someone put keys in a URL. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^/@]*@/, '//***@')
}
