// Case 2: usage/record, the seed's capability, defined in JS with the seed's
// schema (lib/ucan.js), servedAt in Unix seconds. The service runs with its
// generated did:key identity.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { delegate } from '@ucanto/core'
import { ed25519 } from '@ucanto/principal'
import { startEgressd } from '../lib/egressd.js'
import {
  CUSTOMER,
  assertFailed,
  assertRecorded,
  connectTo,
  fetchReceipt,
  newSpace,
  nonce,
  randomResource,
  serviceVerifier,
  usageRecord
} from '../lib/ucan.js'

describe('usage/record (seed schema, servedAt in seconds)', () => {
  /** @type {import('../lib/egressd.js').Egressd} */
  let server
  let verifier
  let connection

  before(async () => {
    server = await startEgressd()
    assert.match(server.did, /^did:key:z6Mk/)
    verifier = serviceVerifier(server.did)
    connection = connectTo(server)
  })

  after(async () => {
    await server?.stop()
  })

  /**
   * @param {object} o
   * @param {import('@ucanto/interface').Signer} o.issuer
   * @param {string} o.space
   * @param {import('@ucanto/interface').Delegation[]} [o.proofs]
   * @param {number} [o.servedAt] seconds
   * @param {number} [o.bytes]
   * @param {boolean} [o.withNonce]
   */
  async function record (o) {
    const resource = await randomResource()
    const bytes = o.bytes ?? 4096
    const servedAt = o.servedAt ?? Math.floor(Date.now() / 1000)
    const invocation = usageRecord.invoke({
      issuer: o.issuer,
      audience: connection.id,
      with: /** @type {`did:key:${string}`} */ (o.space),
      nb: { resource, bytes, servedAt },
      ...(o.withNonce === false ? {} : { nonce: nonce() }),
      proofs: o.proofs ?? []
    })
    const built = await invocation.delegate()
    const [receipt] = await connection.execute(built)
    return { receipt, cause: built.cid, invocation: built, resource, bytes, servedAtMs: servedAt * 1000 }
  }

  test('the space itself records (no proof); servedAt seconds come back as the same instant', async () => {
    const space = await newSpace()
    await server.provision(space.did(), CUSTOMER)
    const r = await record({ issuer: space, space: space.did() })
    await assertRecorded(r.receipt, { ...r, space: space.did(), verifier })
    const fetched = await fetchReceipt(server, r.cause)
    assert.equal(fetched.status, 200)
    await assertRecorded(fetched.receipt, { ...r, space: space.did(), verifier })
  })

  test('a did:key gateway with a usage/record delegation from the space', async () => {
    const space = await newSpace()
    const gateway = await ed25519.generate()
    await server.provision(space.did(), CUSTOMER)
    const proof = await usageRecord.delegate({ issuer: space, audience: gateway, with: space.did() })
    const r = await record({ issuer: gateway, space: space.did(), proofs: [proof] })
    await assertRecorded(r.receipt, { ...r, space: space.did(), verifier })
  })

  test('a did:key gateway with a usage/* delegation from the space', async () => {
    const space = await newSpace()
    const gateway = await ed25519.generate()
    await server.provision(space.did(), CUSTOMER)
    const proof = await delegate({
      issuer: space,
      audience: gateway,
      capabilities: [{ can: 'usage/*', with: space.did() }]
    })
    const r = await record({ issuer: gateway, space: space.did(), proofs: [proof] })
    await assertRecorded(r.receipt, { ...r, space: space.did(), verifier })
  })

  test('without a nonce, with the default expiration (as the seed sent it)', async () => {
    const space = await newSpace()
    await server.provision(space.did(), CUSTOMER)
    const r = await record({ issuer: space, space: space.did(), withNonce: false })
    assert.ok(Number.isFinite(r.invocation.expiration), 'expected the client default expiration')
    await assertRecorded(r.receipt, { ...r, space: space.did(), verifier })
  })

  test('a retried invocation (same CID) succeeds again with the same record', async () => {
    const space = await newSpace()
    await server.provision(space.did(), CUSTOMER)
    const r = await record({ issuer: space, space: space.did() })
    await assertRecorded(r.receipt, { ...r, space: space.did(), verifier })
    const [again] = await connection.execute(r.invocation)
    await assertRecorded(again, { ...r, space: space.did(), verifier })
  })

  test('bytes 0 passes the seed schema but the service refuses it', async () => {
    const space = await newSpace()
    await server.provision(space.did(), CUSTOMER)
    const r = await record({ issuer: space, space: space.did(), bytes: 0 })
    const error = await assertFailed(r.receipt, 'MalformedCapability', verifier)
    assert.match(error.message, /bytes/)
  })

  test('servedAt older than Stripe accepts (40 days) is refused', async () => {
    const space = await newSpace()
    await server.provision(space.did(), CUSTOMER)
    const servedAt = Math.floor(Date.now() / 1000) - 40 * 24 * 3600
    const r = await record({ issuer: space, space: space.did(), servedAt })
    const error = await assertFailed(r.receipt, /\w/, verifier)
    assert.match(error.message, /servedAt/)
    assert.equal((await fetchReceipt(server, r.cause)).status, 404)
  })

  test('servedAt an hour ahead is refused', async () => {
    const space = await newSpace()
    await server.provision(space.did(), CUSTOMER)
    const servedAt = Math.floor(Date.now() / 1000) + 3600
    const r = await record({ issuer: space, space: space.did(), servedAt })
    const error = await assertFailed(r.receipt, /\w/, verifier)
    assert.match(error.message, /servedAt/)
  })
})
