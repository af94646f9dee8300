// What a gateway does with the JS ucanto stack, plus the checks every test makes
// on the receipts it gets back.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import * as Client from '@ucanto/client'
import { DID, createLink, sha256 } from '@ucanto/core'
import { ed25519 } from '@ucanto/principal'
import { CAR, HTTP } from '@ucanto/transport'
import { Link, Schema, capability } from '@ucanto/validator'

/** The default customer the tests provision spaces for. */
export const CUSTOMER = 'did:mailto:example.com:alice'

const RAW_CODE = 0x55

/**
 * `usage/record` as the seed (storacha/w3up's original capability) defined it:
 * servedAt is Unix seconds there.
 */
export const usageRecord = capability({
  can: 'usage/record',
  with: Schema.did({ method: 'key' }),
  nb: Schema.struct({
    resource: Link.match(),
    bytes: Schema.integer(),
    servedAt: Schema.integer()
  }),
  derives: (claimed, delegated) =>
    claimed.with === delegated.with
      ? { ok: {} }
      : { error: new Error(`Can not derive ${claimed.can} with ${claimed.with} from ${delegated.with}`) }
})

/**
 * A connection the way Freeway opens one: CAR over HTTP POST to the service,
 * addressed to the service DID.
 *
 * @param {{url: string, did: string}} server
 */
export function connectTo (server) {
  return Client.connect({
    id: DID.parse(/** @type {`did:${string}:${string}`} */ (server.did)),
    codec: CAR.outbound,
    channel: HTTP.open({ url: new URL(server.url) })
  })
}

/** A fresh CID (raw, sha256) standing for content a gateway served. */
export async function randomResource () {
  return createLink(RAW_CODE, await sha256.digest(randomBytes(64)))
}

/** A new space: an ed25519 key whose did:key is the space DID. */
export function newSpace () {
  return ed25519.generate()
}

/** A nonce the way Freeway makes one. */
export function nonce () {
  return `${process.hrtime()}-${randomBytes(4).toString('hex')}`
}

/**
 * The verifier of the service's receipt signatures, from the service's own key
 * (did:key), answering to `did` (the did:web when the service has one).
 *
 * @param {string} keyDid  did:key of the service key
 * @param {string} [did]   the DID the service announces
 */
export function serviceVerifier (keyDid, did = keyDid) {
  const verifier = ed25519.Verifier.parse(/** @type {`did:key:${string}`} */ (keyDid))
  return did === keyDid ? verifier : verifier.withDID(/** @type {`did:${string}:${string}`} */ (did))
}

const NO_LEAKS = [/\.go:\d+/, /goroutine/, /\bpanic\b/, /\/(?:home|root|tmp|work|usr|var)\//]

/**
 * Asserts a string carries no Go stack trace and no server file path.
 *
 * @param {string} text
 * @param {string} what
 */
export function assertNoLeak (text, what) {
  for (const re of NO_LEAKS) {
    assert.doesNotMatch(text, re, `${what} leaks server internals (${re}): ${text}`)
  }
}

/**
 * Checks a receipt is the service's, signed by it, for `invocation`, and
 * successful with the expected egress record.
 *
 * @param {import('@ucanto/interface').Receipt} receipt
 * @param {object} expect
 * @param {import('@ucanto/interface').Link} expect.cause  the invocation CID
 * @param {string} expect.space
 * @param {import('@ucanto/interface').Link} expect.resource
 * @param {number} expect.bytes
 * @param {number} expect.servedAtMs  the instant served, in milliseconds
 * @param {import('@ucanto/interface').Verifier} expect.verifier  the service
 */
export async function assertRecorded (receipt, expect) {
  assert.ok(receipt, 'no receipt')
  assert.equal(
    receipt.out.error,
    undefined,
    `expected ok, got error: ${JSON.stringify(receipt.out.error)}`
  )
  assert.equal(String(receipt.ran.link()), String(expect.cause), 'receipt ran another invocation')

  const ok = receipt.out.ok
  assert.ok(ok, 'receipt has neither ok nor error')
  assert.deepEqual(
    Object.keys(ok).sort(),
    ['bytes', 'cause', 'resource', 'servedAt', 'space'],
    `unexpected success value fields: ${JSON.stringify(ok)}`
  )
  assert.equal(ok.space, expect.space)
  assert.ok(Link.isLink(ok.resource), `resource is not a link: ${ok.resource}`)
  assert.ok(ok.resource.equals(expect.resource), `resource ${ok.resource} != ${expect.resource}`)
  assert.equal(ok.bytes, expect.bytes)
  assert.equal(typeof ok.servedAt, 'string', 'servedAt must be an ISO 8601 string')
  assert.match(ok.servedAt, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/)
  assert.equal(Date.parse(ok.servedAt), expect.servedAtMs, `servedAt ${ok.servedAt}`)
  assert.ok(Link.isLink(ok.cause), `cause is not a link: ${ok.cause}`)
  assert.ok(ok.cause.equals(expect.cause), `cause ${ok.cause} != invocation ${expect.cause}`)

  await assertSignedBy(receipt, expect.verifier)
}

/**
 * Checks the receipt's signature against the service, and that it is not
 * accepted from somebody else (so the check is real).
 *
 * @param {import('@ucanto/interface').Receipt} receipt
 * @param {import('@ucanto/interface').Verifier} verifier
 */
export async function assertSignedBy (receipt, verifier) {
  assert.equal(receipt.issuer?.did(), verifier.did(), 'receipt issuer (iss) is not the service DID')
  const verified = await receipt.verifySignature(verifier)
  assert.equal(verified.error, undefined, `receipt signature does not verify: ${verified.error?.message}`)
  assert.deepEqual(verified.ok, {})
  const stranger = (await ed25519.generate()).verifier
  const forged = await receipt.verifySignature(stranger)
  assert.ok(forged.error, 'receipt signature verified against an unrelated key')
}

/**
 * Checks a failure receipt: ucanto-shaped {name, message}, the expected name,
 * no leak of server internals, signed by the service.
 *
 * @param {import('@ucanto/interface').Receipt} receipt
 * @param {string|RegExp} name
 * @param {import('@ucanto/interface').Verifier} verifier
 */
export async function assertFailed (receipt, name, verifier) {
  assert.ok(receipt, 'no receipt')
  assert.equal(receipt.out.ok, undefined, `expected an error, got ok: ${JSON.stringify(receipt.out.ok)}`)
  const error = receipt.out.error
  assert.ok(error && typeof error === 'object', 'receipt has no error')
  assert.equal(typeof error.name, 'string', `error has no name: ${JSON.stringify(error)}`)
  assert.equal(typeof error.message, 'string', `error has no message: ${JSON.stringify(error)}`)
  assert.ok(error.message.length > 0, 'error message is empty')
  if (typeof name === 'string') {
    assert.equal(error.name, name, `error: ${JSON.stringify(error)}`)
  } else {
    assert.match(error.name, name, `error: ${JSON.stringify(error)}`)
  }
  assertNoLeak(JSON.stringify(error), `${error.name} failure`)
  // A failure the client made up (e.g. it could not decode the response) has a
  // dummy signature: insist on the service's.
  await assertSignedBy(receipt, verifier)
  return error
}

/**
 * GET /receipt/{cid}: returns the raw response and, when 200, the receipt for
 * `cid` decoded from the CAR agent message with the ucanto CAR codec.
 *
 * @param {{url: string}} server
 * @param {import('@ucanto/interface').Link} cid
 */
export async function fetchReceipt (server, cid) {
  const res = await fetch(new URL(`receipt/${cid}`, server.url))
  const body = new Uint8Array(await res.arrayBuffer())
  if (res.status !== 200) {
    return { status: res.status, headers: res.headers, body }
  }
  const headers = Object.fromEntries(res.headers.entries())
  const message = await CAR.response.decode({ headers, body })
  assert.equal(
    message.root.data['ucanto/message@7.0.0'] !== undefined,
    true,
    'not a ucanto/message@7.0.0 agent message'
  )
  const receipt = message.get(cid)
  return { status: res.status, headers: res.headers, body, message, receipt }
}
