// The JS reference server egressd's load tool measures side by side with
// egressd (issue 16): what storacha/w3up's upload-api does for a record
// invocation, on the same ucanto server, codec and validator it uses, with
// in-memory stores in place of DynamoDB, SQS and S3. Nothing is skipped that
// upload-api checks: every invocation goes through Server.provide (audience,
// then the validator's `access`: signatures of the invocation and of every
// proof, time bounds, capability derivation with the capability's own
// schema), and a revocation lookup over the whole chain, as upload-api's
// createRevocationChecker does. A ratio against a server that cut corners
// would flatter egressd; check.js proves it refuses what upload-api refuses.
//
// Usage: node server.js --key FILE --seed FILE [--port 18481]
//   --key   the service's private key (Mg...), e.g. egressd's DATA_DIR/service.key,
//           so both servers answer as, and sign receipts with, the same DID
//   --seed  JSON {provider, customer, spaces: [{did}]} as `egressd bench --spaces-file` writes it
// PEER_PORT, PEER_KEY and PEER_SEED stand in for the flags.

import { readFileSync } from 'node:fs'
import http from 'node:http'
import { parseArgs } from 'node:util'
import { Space } from '@storacha/capabilities'
import { SpaceDID, equalWith } from '@storacha/capabilities/utils'
import { Message } from '@ucanto/core'
import { ed25519 } from '@ucanto/principal'
import * as Server from '@ucanto/server'
import { CAR } from '@ucanto/transport'
import { Schema, capability } from '@ucanto/validator'

const { values: flags } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PEER_PORT ?? '18481' },
    key: { type: 'string', default: process.env.PEER_KEY },
    seed: { type: 'string', default: process.env.PEER_SEED }
  }
})
if (!flags.key || !flags.seed) {
  console.error('usage: node server.js --key SERVICE_KEY_FILE --seed SPACES_JSON [--port 18481]')
  process.exit(2)
}

const id = ed25519.parse(readFileSync(flags.key, 'utf8').trim())
const seed = JSON.parse(readFileSync(flags.seed, 'utf8'))

/**
 * usage/record exactly as w3up's capabilities defined it for upload-api's
 * usage/record handler (the seed): servedAt in seconds. @storacha/capabilities
 * 2.3.1 no longer exports it; its successor is Space.egressRecord, served too.
 */
const usageRecord = capability({
  can: 'usage/record',
  with: SpaceDID,
  nb: Schema.struct({
    resource: Schema.link(),
    bytes: Schema.integer().greaterThan(0),
    servedAt: Schema.integer().greaterThan(-1)
  }),
  derives: equalWith
})

// The consumer table, keyed as upload-api's provisionsStorage.getConsumer
// looks it up: provider (the invocation's audience) and space.
const consumers = new Map()
for (const space of seed.spaces) {
  consumers.set(`${seed.provider} ${space.did}`, { did: space.did, customer: seed.customer })
}

/** The egress queue (SQS in w3infra): every event recorded, in order. */
const queue = []
/** Receipts by invocation CID, as w3infra's agent store keeps them. */
const receipts = new Map()
/** Revoked UCAN CIDs (none in a bench run; looked up all the same). */
const revocations = new Map()

/**
 * upload-api's record handlers: find the consumer of the space under this
 * provider, then record the event with its customer and the invocation as cause.
 *
 * @param {number} msPerUnit  1000 for servedAt in seconds, 1 for milliseconds
 */
const recordWith = (msPerUnit) => async ({ capability, invocation }) => {
  const consumer = consumers.get(`${invocation.audience.did()} ${capability.with}`)
  if (!consumer) {
    return { error: { name: 'ConsumerNotFound', message: `${capability.with} has no consumer under ${invocation.audience.did()}` } }
  }
  const event = {
    space: capability.with,
    customer: consumer.customer,
    resource: capability.nb.resource,
    bytes: capability.nb.bytes,
    servedAt: new Date(capability.nb.servedAt * msPerUnit).toISOString(),
    cause: invocation.cid
  }
  queue.push(event)
  return { ok: { space: event.space, resource: event.resource, bytes: event.bytes, servedAt: event.servedAt, cause: event.cause } }
}

const server = Server.create({
  id,
  codec: CAR.inbound,
  service: {
    usage: { record: Server.provide(usageRecord, recordWith(1000)) },
    space: { content: { serve: { egress: { record: Server.provide(Space.egressRecord, recordWith(1)) } } } }
  },
  catch: (error) => console.error(error),
  // upload-api's createRevocationChecker: every UCAN of the chain is looked up.
  validateAuthorization: (auth) => {
    for (const ucan of chain(auth)) {
      if (revocations.has(`${ucan.cid}`)) {
        return { error: { name: 'Revoked', message: `${ucan.cid} has been revoked` } }
      }
    }
    return { ok: {} }
  }
})

/** @returns {Iterable<import('@ucanto/interface').Delegation>} */
function * chain (auth) {
  yield auth.delegation
  for (const proof of auth.proofs) yield * chain(proof)
}

/**
 * Server.handle, with the receipts kept before the reply is encoded (what
 * w3infra's invocation router does with its agent store).
 */
async function invoke (request) {
  const selection = server.codec.accept(request)
  if (selection.error) {
    const { status, headers = {}, message } = selection.error
    return { status, headers, body: new TextEncoder().encode(message) }
  }
  const { encoder, decoder } = selection.ok
  let message
  try {
    message = await decoder.decode(request)
  } catch (err) {
    return { status: 400, headers: { 'Content-Type': 'text/plain' }, body: new TextEncoder().encode(`Bad request: ${err.message}`) }
  }
  const reply = await Server.execute(message, server)
  for (const [ran, receipt] of reply.receipts) {
    receipts.set(ran, receipt)
  }
  return encoder.encode(reply)
}

async function readBody (req) {
  const chunks = []
  for await (const chunk of req) chunks.push(chunk)
  return new Uint8Array(Buffer.concat(chunks))
}

function send (res, { status = 200, headers = {}, body }) {
  res.writeHead(status, headers)
  res.end(body)
}

http.createServer(async (req, res) => {
  try {
    const path = new URL(req.url, 'http://peer').pathname
    if (req.method === 'POST' && path === '/') {
      send(res, await invoke({ headers: req.headers, body: await readBody(req) }))
    } else if (req.method === 'GET' && path === '/') {
      send(res, {
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ did: id.did(), capabilities: [usageRecord.can, Space.egressRecord.can], queued: queue.length, receipts: receipts.size })
      })
    } else if (req.method === 'GET' && path.startsWith('/receipt/')) {
      const receipt = receipts.get(path.slice('/receipt/'.length))
      if (!receipt) {
        send(res, { status: 404, body: 'not found' })
      } else {
        send(res, await CAR.response.encode(await Message.build({ receipts: [receipt] })))
      }
    } else if (req.method === 'GET' && path === '/healthz') {
      send(res, { body: 'ok' })
    } else {
      send(res, { status: 404, body: 'not found' })
    }
  } catch (err) {
    console.error(err)
    send(res, { status: 500, body: 'internal error' })
  }
}).listen(Number(flags.port), '127.0.0.1', () => {
  console.log(`peer ${id.did()} on http://127.0.0.1:${flags.port}, ${consumers.size} spaces of ${seed.customer}`)
})
