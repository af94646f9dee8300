// Case: ucan/revoke as a JS client sends it (@storacha/capabilities
// UCAN.revoke, the delegation to revoke attached as a proof). A space
// revokes the delegation its gateway records with; the gateway's next record
// is refused. Somebody outside the delegation's chain cannot revoke it.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Space, UCAN } from '@storacha/capabilities'
import { ed25519 } from '@ucanto/principal'
import { startEgressd } from '../lib/egressd.js'
import {
  CUSTOMER,
  assertFailed,
  assertSignedBy,
  connectTo,
  newSpace,
  nonce,
  randomResource,
  serviceVerifier
} from '../lib/ucan.js'

describe('ucan/revoke', () => {
  /** @type {import('../lib/egressd.js').Egressd} */
  let server
  let verifier
  let connection

  before(async () => {
    server = await startEgressd()
    verifier = serviceVerifier(server.did)
    connection = connectTo(server)
  })

  after(async () => {
    await server?.stop()
  })

  /** A provisioned space, a gateway, and the space's delegation to it. */
  async function spaceAndGateway () {
    const space = await newSpace()
    await server.provision(space.did(), CUSTOMER)
    const gateway = await ed25519.generate()
    const proof = await Space.contentServe.delegate({
      issuer: space, audience: gateway, with: space.did(), expiration: Infinity
    })
    return { space, gateway, proof }
  }

  /** Freeway's egress record, from gateway with proof. */
  async function record (gateway, space, proof) {
    return Space.egressRecord
      .invoke({
        issuer: gateway,
        audience: connection.id,
        with: space.did(),
        nb: { resource: await randomResource(), bytes: 512, servedAt: Date.now() },
        expiration: Infinity,
        nonce: nonce(),
        proofs: [proof]
      })
      .execute(connection)
  }

  /** UCAN.revoke of ucan, by issuer acting as itself. */
  function revoke (issuer, ucan) {
    return UCAN.revoke
      .invoke({
        issuer,
        audience: connection.id,
        with: issuer.did(),
        nb: { ucan: ucan.cid },
        proofs: [ucan]
      })
      .execute(connection)
  }

  test('a revoked delegation no longer records', async () => {
    const { space, gateway, proof } = await spaceAndGateway()
    const before = await record(gateway, space, proof)
    assert.equal(before.out.error, undefined, `record failed: ${JSON.stringify(before.out.error)}`)

    const startedAt = Date.now()
    const revoked = await revoke(space, proof)
    assert.equal(revoked.out.error, undefined, `revoke failed: ${JSON.stringify(revoked.out.error)}`)
    assert.deepEqual(Object.keys(revoked.out.ok), ['time'])
    assert.equal(typeof revoked.out.ok.time, 'number')
    assert.ok(revoked.out.ok.time >= startedAt - 1000 && revoked.out.ok.time <= Date.now() + 1000,
      `revocation time ${revoked.out.ok.time} is not now (Unix milliseconds)`)
    await assertSignedBy(revoked, verifier)

    const after = await record(gateway, space, proof)
    const error = await assertFailed(after, 'Revoked', verifier)
    assert.match(error.message, new RegExp(`${proof.cid} has been revoked`))

    // A new delegation from the space works: revocation is of one delegation.
    const fresh = await Space.contentServe.delegate({
      issuer: space, audience: gateway, with: space.did(), expiration: Infinity, nonce: nonce()
    })
    const again = await record(gateway, space, fresh)
    assert.equal(again.out.error, undefined, `record with a new delegation failed: ${JSON.stringify(again.out.error)}`)
  })

  test('somebody outside the chain cannot revoke', async () => {
    const { space, gateway, proof } = await spaceAndGateway()
    const stranger = await ed25519.generate()

    const refused = await revoke(stranger, proof)
    await assertFailed(refused, 'UnauthorizedRevocation', verifier)

    // Nor by claiming to be the space, which it cannot prove.
    const posing = await UCAN.revoke
      .invoke({
        issuer: stranger,
        audience: connection.id,
        with: space.did(),
        nb: { ucan: proof.cid },
        proofs: [proof]
      })
      .execute(connection)
    await assertFailed(posing, 'Unauthorized', verifier)

    const still = await record(gateway, space, proof)
    assert.equal(still.out.error, undefined, `record after a refused revocation failed: ${JSON.stringify(still.out.error)}`)
  })

  test('the gateway can give its delegation up', async () => {
    const { space, gateway, proof } = await spaceAndGateway()
    const renounced = await revoke(gateway, proof)
    assert.equal(renounced.out.error, undefined, `revoke failed: ${JSON.stringify(renounced.out.error)}`)
    await assertFailed(await record(gateway, space, proof), 'Revoked', verifier)
  })

  test('the revoked delegation must be sent', async () => {
    const { space, proof } = await spaceAndGateway()
    const missing = await UCAN.revoke
      .invoke({
        issuer: space,
        audience: connection.id,
        with: space.did(),
        nb: { ucan: proof.cid }
      })
      .execute(connection)
    await assertFailed(missing, 'UCANNotFound', verifier)
  })
})
