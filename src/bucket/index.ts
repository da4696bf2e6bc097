import {join, resolve} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'
import {defaultBucketDir, homeDir} from '../util/paths.js'
import {BucketError, BUCKET_BAD_URL} from './errors.js'
import {FileBucket} from './file.js'
import {redactUrl, S3Bucket, type S3BucketOptions} from './s3.js'
import type {Bucket, BucketConfig} from './types.js'

export * from './errors.js'
export * from './types.js'
export {FileBucket} from './file.js'
export {S3Bucket, parseS3Url, type S3BucketOptions} from './s3.js'

/** `file://$XDG_DATA_HOME/dbgate/bucket`: recordings work before anyone configures a bucket. */
export function defaultBucketUrl(env: NodeJS.ProcessEnv = process.env): string {
  return pathToFileURL(defaultBucketDir(env)).href
}

/** Picks the implementation by scheme: `file:///dir`, `file://./rel`, a bare path, or `s3://bucket/prefix`. */
export function openBucket(spec: string | BucketConfig, extra: Pick<S3BucketOptions, 'credentials' | 'maxAttempts'> = {}): Bucket {
  const cfg: BucketConfig = typeof spec === 'string' ? {url: spec} : spec
  const url = cfg.url
  if (url.startsWith('s3://')) {
    const {url: _u, ...opts} = cfg
    return new S3Bucket(url, {...opts, ...extra})
  }
  if (url.startsWith('file://')) {
    const rest = url.slice('file://'.length)
    // file:///abs is a proper URL; file://./rel and file://~/x are what people type.
    const path = rest.startsWith('/') ? fileURLToPath(url) : rest.startsWith('~/') ? join(homeDir(), rest.slice(2)) : resolve(rest)
    return new FileBucket(path)
  }
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && url.length > 0) return new FileBucket(resolve(url))
  throw new BucketError(BUCKET_BAD_URL, `unsupported bucket URL ${redactUrl(url)}: use file://DIR or s3://bucket/prefix`)
}
