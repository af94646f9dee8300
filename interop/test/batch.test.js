// Case 3: one HTTP request, one agent message, 100 invocations for several
// spaces (Storacha's egress consumer batches up to 100 a request). Both
// capabilities are mixed in, from a did:web gateway holding each space's
// delegation. Every receipt is decoded, checked and verified, then fetched again
// with GET /receipt/{cid}.

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Space } from '@storacha/capabilities'
import * as Client from '@ucanto/client'
import { DID } from '@ucanto/core'
import { ed25519 } from '@ucanto/principal'
import { CAR, HTTP } from '@ucanto/transport'
import { startEgressd } from '../lib/egressd.js'
import {
  assertFailed,
  assertRecorded,
  fetchReceipt,
  newSpace,
  nonce,
  randomResource,
  serviceVerifier,
  usageRecord
} from '../lib/ucan.js'

const GATEWAY_DID = 'did:web:gateway.example'
const BATCH = 100
const SPACES = 7

describe('one request carrying 100 invocations', () => {
  /** @type {import('../lib/egressd.js').Egressd} */
  let server
  let gateway
  let verifier
  /** HTTP requests the client made. */
  let posts = 0
  let connection

  before(async () => {
    const gatewayKey = await ed25519.generate()
    gateway = gatewayKey.withDID(GATEWAY_DID)
    server = await startEgressd({ principalMappings: [`${GATEWAY_DID}=${gatewayKey.did()}`] })
    verifier = serviceVerifier(server.did)
    connection = Client.connect({
      id: DID.parse(/** @type {`did:key:${string}`} */ (server.did)),
      codec: CAR.outbound,
      channel: HTTP.open({
        url: new URL(server.url),
        fetch: (url, init) => {
          posts++
          return fetch(url, init)
        }
      })
    })
  })

  after(async () => {
    await server?.stop()
  })

  /**
   * A space provisioned (or not) with delegations of both capabilities to the gateway.
   *
   * @param {{provision?: boolean}} [o]
   */
  async function gatewaySpace (o = {}) {
    const signer = await newSpace()
    if (o.provision !== false) {
      await server.provision(signer.did(), `did:mailto:example.com:customer-${signer.did().slice(-6)}`)
    }
    const serve = await Space.contentServe.delegate({
      issuer: signer,
      audience: gateway,
      with: signer.did(),
      expiration: Infinity
    })
    const usage = await usageRecord.delegate({
      issuer: signer,
      audience: gateway,
      with: signer.did(),
      expiration: Infinity
    })
    return { did: signer.did(), serve, usage }
  }

  /**
   * Invocation number i of a batch: even ones are Freeway's egress/record
   * (ms), odd ones the seed's usage/record (seconds).
   *
   * @param {number} i
   * @param {{did: `did:key:${string}`, serve: any, usage: any}} space
   */
  async function invocation (i, space) {
    const resource = await randomResource()
    const bytes = 1000 + i
    const servedAtMs = (Math.floor(Date.now() / 1000) - i) * 1000 // whole seconds: both units agree
    const common = {
      issuer: gateway,
      audience: connection.id,
      with: space.did,
      expiration: Infinity,
      nonce: nonce()
    }
    const built = await (i % 2 === 0
      ? Space.egressRecord.invoke({
        ...common,
        nb: { resource, bytes, servedAt: servedAtMs },
        proofs: [space.serve]
      })
      : usageRecord.invoke({
        ...common,
        nb: { resource, bytes, servedAt: servedAtMs / 1000 },
        proofs: [space.usage]
      })
    ).delegate()
    return { invocation: built, cause: built.cid, space: space.did, resource, bytes, servedAtMs }
  }

  test('100 invocations, 7 spaces, both capabilities: 100 ok receipts, all signed', async () => {
    const spaces = await Promise.all(Array.from({ length: SPACES }, () => gatewaySpace()))
    const batch = await Promise.all(
      Array.from({ length: BATCH }, (_, i) => invocation(i, spaces[i % SPACES]))
    )
    assert.equal(new Set(batch.map(b => String(b.cause))).size, BATCH, 'invocation CIDs must differ')

    const before = posts
    const receipts = await connection.execute(...batch.map(b => b.invocation))
    assert.equal(posts - before, 1, 'the batch must travel in one HTTP request')
    assert.equal(receipts.length, BATCH)

    for (const [i, receipt] of receipts.entries()) {
      await assertRecorded(receipt, { ...batch[i], verifier })
    }
    const perSpace = new Map()
    for (const r of receipts) perSpace.set(r.out.ok.space, (perSpace.get(r.out.ok.space) ?? 0) + 1)
    assert.equal(perSpace.size, SPACES)

    // Every receipt is served back by invocation CID, identical, as a CAR agent message.
    for (const [i, b] of batch.entries()) {
      const fetched = await fetchReceipt(server, b.cause)
      assert.equal(fetched.status, 200, `GET /receipt/${b.cause}`)
      assert.ok(fetched.receipt.link().equals(receipts[i].link()), `receipt ${i} differs when fetched`)
      await assertRecorded(fetched.receipt, { ...b, verifier })
    }
  })

  test('a partly bad batch: good invocations recorded, each bad one gets its own failure', async () => {
    const good = await Promise.all(Array.from({ length: 3 }, () => gatewaySpace()))
    const unprovisioned = await gatewaySpace({ provision: false })
    const foreign = await gatewaySpace()
    const victim = await gatewaySpace()

    /** @type {Array<{kind: 'ok'|'ConsumerNotFound'|'Unauthorized'} & Awaited<ReturnType<typeof invocation>>>} */
    const batch = []
    for (let i = 0; i < BATCH; i++) {
      if (i % 10 === 3) {
        batch.push({ kind: 'ConsumerNotFound', ...(await invocation(i, unprovisioned)) })
      } else if (i % 10 === 7) {
        // Record against the victim space with a delegation from another space.
        batch.push({
          kind: 'Unauthorized',
          ...(await invocation(i, { did: victim.did, serve: foreign.serve, usage: foreign.usage }))
        })
      } else {
        batch.push({ kind: 'ok', ...(await invocation(i, good[i % good.length])) })
      }
    }

    const receipts = await connection.execute(...batch.map(b => b.invocation))
    assert.equal(receipts.length, BATCH)
    const counts = { ok: 0, ConsumerNotFound: 0, Unauthorized: 0 }
    for (const [i, receipt] of receipts.entries()) {
      const b = batch[i]
      assert.equal(String(receipt.ran.link()), String(b.cause))
      if (b.kind === 'ok') {
        await assertRecorded(receipt, { ...b, verifier })
      } else {
        await assertFailed(receipt, b.kind, verifier)
        assert.equal((await fetchReceipt(server, b.cause)).status, 404, 'a failure receipt was stored')
      }
      counts[b.kind]++
    }
    assert.deepEqual(counts, { ok: 80, ConsumerNotFound: 10, Unauthorized: 10 })
  })
})
