import {createServer, request, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import type {AddressInfo} from 'node:net'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {BucketError, S3Bucket} from '../../src/bucket/index.js'
import {TestS3} from '../audit/s3rver.js'

/**
 * s3rver ignores If-None-Match on PUT. This front adds the S3 semantics (412 PreconditionFailed
 * when the key exists) and forwards everything else untouched, so the client's real request and
 * error paths run against a store that honours conditional writes.
 */
function conditionalFront(upstreamPort: number): Promise<Server> {
  const forward = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const up = request({host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers}, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers)
      r.pipe(res)
    })
    up.end(body)
  }
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      if (req.method !== 'PUT' || req.headers['if-none-match'] !== '*') return forward(req, res, body)
      const path = req.url!.split('?')[0]
      request({host: '127.0.0.1', port: upstreamPort, method: 'HEAD', path}, (head) => {
        head.resume()
        if (head.statusCode === 200) {
          res.writeHead(412, {'content-type': 'application/xml'})
          res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>')
        } else {
          forward(req, res, body)
        }
      }).end()
    })
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

let s3: TestS3
let front: Server
let bucket: S3Bucket

beforeAll(async () => {
  s3 = await TestS3.start()
  front = await conditionalFront(s3.port)
  bucket = new S3Bucket(`s3://${s3.bucketName}/cond`, {
    endpoint: `http://127.0.0.1:${(front.address() as AddressInfo).port}`,
    forcePathStyle: true,
    credentials: {accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER'},
    conditionalWrites: 'probe',
    maxAttempts: 1,
  })
})
afterAll(async () => {
  await new Promise((r) => front.close(r))
  await s3.dispose()
})

describe('s3 bucket on a store with conditional writes', () => {
  it('passes the probe and refuses the second create-exclusive write with OBJECT_EXISTS', async () => {
    expect(await bucket.supportsConditionalWrites()).toBe(true)
    await bucket.put('approvals/r1/decision.json', '{"by":"bob"}', {ifNoneMatch: true})
    const err = await bucket.put('approvals/r1/decision.json', '{"by":"eve"}', {ifNoneMatch: true}).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(BucketError)
    expect((err as BucketError).code).toBe('OBJECT_EXISTS')
    expect((await bucket.get('approvals/r1/decision.json')).body.toString()).toBe('{"by":"bob"}')
  })
})
