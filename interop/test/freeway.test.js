// Case 1: Space.egressRecord from @storacha/capabilities, invoked the way Freeway
// does: the gateway's ed25519 key wrapped as a did:web, a space/content/serve/*
// delegation from the space as proof, a nonce, no expiration, servedAt in ms.
// The service itself has a did:web identity too (as Storacha's upload service).

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Space } from '@storacha/capabilities'
import { SpaceDID } from '@storacha/capabilities/utils'
import { DID } from '@ucanto/core'
import { ed25519 } from '@ucanto/principal'
import { CAR } from '@ucanto/transport'
import { startEgressd } from '../lib/egressd.js'
import {
  CUSTOMER,
  assertFailed,
  assertNoLeak,
  assertRecorded,
  assertSignedBy,
  connectTo,
  fetchReceipt,
  newSpace,
  nonce,
  randomResource,
  serviceVerifier
} from '../lib/ucan.js'

const GATEWAY_DID = 'did:web:gateway.example'
const SERVICE_DID = 'did:web:egress.example'

describe('Freeway: space/content/serve/egress/record from a did:web gateway', () => {
  /** @type {import('../lib/egressd.js').Egressd} */
  let server
  let serviceKey
  let gatewaySigner
  let gateway

  before(async () => {
    serviceKey = await ed25519.generate()
    gatewaySigner = await ed25519.generate()
    // What Freeway does with GATEWAY_PRINCIPAL_KEY and GATEWAY_DID.
    gateway = ed25519.Signer.parse(ed25519.format(gatewaySigner)).withDID(GATEWAY_DID)
    server = await startEgressd({
      key: ed25519.format(serviceKey),
      did: SERVICE_DID,
      principalMappings: [`${GATEWAY_DID}=${gatewaySigner.did()}`]
    })
  })

  after(async () => {
    await server?.stop()
  })

  test('the service announces its did:web and both capabilities', async () => {
    assert.equal(server.did, SERVICE_DID)
    const res = await fetch(server.url)
    assert.equal(res.status, 200)
    const info = await res.json()
    assert.equal(info.did, SERVICE_DID)
    assert.ok(info.capabilities.includes('space/content/serve/egress/record'))
    assert.ok(info.capabilities.includes('usage/record'))
  })

  test('the did:web document names the service key', async () => {
    const res = await fetch(new URL('.well-known/did.json', server.url))
    assert.equal(res.status, 200)
    const doc = await res.json()
    assert.equal(doc.id, SERVICE_DID)
    const keys = JSON.stringify(doc)
    assert.ok(
      keys.includes(serviceKey.did().slice('did:key:'.length)),
      `did.json does not name ${serviceKey.did()}: ${keys}`
    )
  })

  /**
   * One egress record the way Freeway's withEgressClient sends it.
   *
   * @param {import('@ucanto/interface').Signer} space
   * @param {object} [o]
   */
  async function freewayRecord (space, o = {}) {
    const resource = await randomResource()
    const bytes = o.bytes ?? 1234
    const servedAt = o.servedAt ?? new Date()
    // The delegation a space owner gives the gateway (Freeway finds it in its
    // delegations storage and passes it as `delegationProofs`).
    const proof = await Space.contentServe.delegate({
      issuer: o.delegator ?? space,
      audience: gateway,
      with: (o.delegator ?? space).did(),
      expiration: Infinity
    })
    const connection = connectTo({ url: server.url, did: SERVICE_DID })
    const invocation = Space.egressRecord.invoke({
      issuer: gateway,
      audience: DID.parse(SERVICE_DID),
      with: SpaceDID.from(space.did()),
      nb: { resource, bytes, servedAt: servedAt.getTime() },
      expiration: Infinity,
      nonce: nonce(),
      proofs: [proof]
    })
    const built = await invocation.delegate()
    const receipt = await invocation.execute(connection)
    return { receipt, cause: built.cid, invocation: built, resource, bytes, servedAtMs: servedAt.getTime() }
  }

  test('records egress and returns a signed receipt with the egress record', async () => {
    const space = await newSpace()
    await server.provision(space.did(), CUSTOMER)
    const verifier = serviceVerifier(serviceKey.did(), SERVICE_DID)

    const r = await freewayRecord(space)
    await assertRecorded(r.receipt, { ...r, space: space.did(), verifier })
    // The invocation carried a nonce and no expiration, as Freeway's do.
    assert.equal(r.invocation.expiration, Infinity)
    assert.ok(r.invocation.nonce)

    // The same receipt, fetched by invocation CID, decodes in JS.
    const fetched = await fetchReceipt(server, r.cause)
    assert.equal(fetched.status, 200, `GET /receipt/${r.cause}: ${new TextDecoder().decode(fetched.body)}`)
    assert.match(fetched.headers.get('content-type') ?? '', /application\/vnd\.ipld\.car/)
    assert.ok(fetched.receipt.link().equals(r.receipt.link()), 'fetched receipt differs from the one returned')
    await assertRecorded(fetched.receipt, { ...r, space: space.did(), verifier })

    // Looked up by the receipt's own CID, the same receipt comes back.
    const res = await fetch(new URL(`receipt/${r.receipt.link()}`, server.url))
    assert.equal(res.status, 200)
    const message = await CAR.response.decode({
      headers: Object.fromEntries(res.headers.entries()),
      body: new Uint8Array(await res.arrayBuffer())
    })
    const byReceiptCID = [...message.receipts.values()]
    assert.equal(byReceiptCID.length, 1)
    assert.ok(byReceiptCID[0].link().equals(r.receipt.link()))
  })

  test('GET /receipt/{cid} of an unknown invocation: 404 with a named JSON error', async () => {
    const res = await fetch(new URL(`receipt/${await randomResource()}`, server.url))
    assert.equal(res.status, 404)
    const body = await res.text()
    const error = JSON.parse(body)
    assert.equal(typeof error.name, 'string')
    assert.equal(typeof error.message, 'string')
    assertNoLeak(body, '404 body')
  })

  test('servedAt in milliseconds, a few minutes and days back, maps to the same instant', async () => {
    const space = await newSpace()
    await server.provision(space.did(), CUSTOMER)
    const verifier = serviceVerifier(serviceKey.did(), SERVICE_DID)
    for (const ago of [0, 3 * 60_000, 3 * 24 * 3600_000]) {
      const r = await freewayRecord(space, { servedAt: new Date(Date.now() - ago - 789) })
      await assertRecorded(r.receipt, { ...r, space: space.did(), verifier })
    }
  })

  test('the receipt signature verifies with the key from the did:web document', async () => {
    const space = await newSpace()
    await server.provision(space.did(), CUSTOMER)
    const r = await freewayRecord(space)
    const doc = await (await fetch(new URL('.well-known/did.json', server.url))).json()
    const multibase = doc.verificationMethod?.[0]?.publicKeyMultibase
    assert.equal(typeof multibase, 'string', `no publicKeyMultibase in did.json: ${JSON.stringify(doc)}`)
    const verifier = ed25519.Verifier.parse(`did:key:${multibase}`).withDID(SERVICE_DID)
    await assertSignedBy(r.receipt, verifier)
  })

  test('unprovisioned space: ConsumerNotFound', async () => {
    const space = await newSpace()
    const r = await freewayRecord(space)
    await assertFailed(r.receipt, 'ConsumerNotFound', serviceVerifier(serviceKey.did(), SERVICE_DID))
    // Failure receipts are not stored.
    const fetched = await fetchReceipt(server, r.cause)
    assert.equal(fetched.status, 404)
  })

  test('a space/content/serve/* delegation from another space: Unauthorized', async () => {
    const space = await newSpace()
    const other = await newSpace()
    await server.provision(space.did(), CUSTOMER)
    await server.provision(other.did(), CUSTOMER)
    const r = await freewayRecord(space, { delegator: other })
    await assertFailed(r.receipt, 'Unauthorized', serviceVerifier(serviceKey.did(), SERVICE_DID))
  })

  test('a did:web gateway the service cannot map to a key: refused', async () => {
    const space = await newSpace()
    await server.provision(space.did(), CUSTOMER)
    const stranger = (await ed25519.generate()).withDID('did:web:unknown-gateway.example')
    const proof = await Space.contentServe.delegate({
      issuer: space,
      audience: stranger,
      with: space.did(),
      expiration: Infinity
    })
    const receipt = await Space.egressRecord
      .invoke({
        issuer: stranger,
        audience: DID.parse(SERVICE_DID),
        with: space.did(),
        nb: { resource: await randomResource(), bytes: 10, servedAt: Date.now() },
        expiration: Infinity,
        nonce: nonce(),
        proofs: [proof]
      })
      .execute(connectTo({ url: server.url, did: SERVICE_DID }))
    await assertFailed(receipt, 'Unauthorized', serviceVerifier(serviceKey.did(), SERVICE_DID))
  })
})
