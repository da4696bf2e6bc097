import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import S3rver from 's3rver'
import {S3Bucket} from '../../src/bucket/index.js'

/** A real S3 HTTP API on 127.0.0.1 that can be stopped and restarted on the same port with the same data. */
export class TestS3 {
  private server?: S3rver
  port = 0

  private constructor(readonly dir: string, readonly bucketName: string) {}

  static async start(bucketName = 'audit'): Promise<TestS3> {
    const s = new TestS3(await mkdtemp(join(tmpdir(), 'dbgate-s3rver-')), bucketName)
    await s.up()
    return s
  }

  async up(): Promise<void> {
    this.server = new S3rver({address: '127.0.0.1', port: this.port, silent: true, directory: this.dir, configureBuckets: [{name: this.bucketName, configs: []}]})
    const addr = await this.server.run()
    this.port = addr.port
  }

  async down(): Promise<void> {
    await this.server?.close()
    this.server = undefined
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`
  }

  bucket(prefix = 'dbgate', extra: {conditionalWrites?: 'native' | 'probe'} = {}): S3Bucket {
    return new S3Bucket(`s3://${this.bucketName}/${prefix}`, {
      endpoint: this.endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: {accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER'},
      maxAttempts: 1,
      ...extra,
    })
  }

  async dispose(): Promise<void> {
    await this.down()
    await rm(this.dir, {recursive: true, force: true})
  }
}
