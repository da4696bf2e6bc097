/** The one storage seam recordings, keys and approvals go through. Keys are `/`-separated. */

export interface ObjectInfo {
  key: string
  size: number
  /** Changes whenever the object's content may have changed; caches key on it. */
  etag: string
  lastModified: Date
}

export interface PutOptions {
  /** Create-exclusive: fail with OBJECT_EXISTS if the key is already there. Two writers cannot both win. */
  ifNoneMatch?: boolean
  contentType?: string
  contentEncoding?: string
}

export interface GetResult {
  body: Buffer
  info: ObjectInfo
}

export interface Bucket {
  /** Human-readable location without credentials, for messages. */
  readonly url: string
  put(key: string, body: Buffer | string, opts?: PutOptions): Promise<ObjectInfo>
  get(key: string): Promise<GetResult>
  /** Undefined when the object does not exist. */
  head(key: string): Promise<ObjectInfo | undefined>
  list(prefix: string): AsyncIterable<ObjectInfo>
  /** Deleting a missing object is not an error. */
  delete(key: string): Promise<void>
}

export interface ObjectLockOptions {
  mode: 'GOVERNANCE' | 'COMPLIANCE'
  days: number
}

/** The `bucket:` config value in object form. */
export interface BucketConfig {
  url: string
  endpoint?: string
  region?: string
  forcePathStyle?: boolean
  objectLock?: ObjectLockOptions
  /**
   * How to get create-exclusive puts on S3: `native` sends If-None-Match and trusts the store
   * (AWS S3, R2, recent MinIO); `probe` checks once that the store really refuses an overwrite and
   * fails with CONDITIONAL_WRITE_UNSUPPORTED otherwise, so a store that ignores the header can
   * never make two approvers both win.
   */
  conditionalWrites?: 'native' | 'probe'
}
