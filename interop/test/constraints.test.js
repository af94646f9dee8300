// Case 6: caveats a space fixes in the delegation it gives a gateway bind the
// gateway. A delegation of the record capability with nb {bytes: 100} lets the
// gateway record 100 bytes and nothing else; one with nb {resource} that
// resource only; a delegation without nb still lets it record anything. Both
// capability names, delegations built with the JS capability definitions'
// own delegate() (which takes a partial nb), failures as the JS client sees
// them. Note: Space.egressRecord in @storacha/capabilities derives with
// equalWith alone, so a JS ucanto server would accept the over-claims below;
// egressd refuses them (see capabilities/derive.go for the rule it applies).

import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Space } from '@storacha/capabilities'
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

/** Both names of the record capability, with the unit each sends servedAt in. */
const CAPABILITIES = [
  { name: 'space/content/serve/egress/record', capability: Space.egressRecord, servedAt: () => Date.now(), toMs: t => t },
  { name: 'usage/record', capability: usageRecord, servedAt: () => Math.floor(Date.now() / 1000), toMs: t => t * 1000 }
]

describe('delegated caveats bind the gateway', () => {
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

  for (const c of CAPABILITIES) {
    describe(c.name, () => {
      let space
      let gateway

      before(async () => {
        space = await newSpace()
        gateway = await ed25519.generate()
        await server.provision(space.did(), CUSTOMER)
      })

      /** The space delegates c to the gateway, fixing `nb` (may be omitted). */
      function grant (nb) {
        return c.capability.delegate({
          issuer: space,
          audience: gateway,
          with: space.did(),
          ...(nb ? { nb } : {}),
          expiration: Infinity
        })
      }

      /** The gateway records `bytes` of `resource` under `proof`. */
      async function record (proof, resource, bytes) {
        const servedAt = c.servedAt()
        const invocation = await c.capability.invoke({
          issuer: gateway,
          audience: connection.id,
          with: space.did(),
          nb: { resource, bytes, servedAt },
          nonce: nonce(),
          proofs: [proof]
        }).delegate()
        const [receipt] = await connection.execute(invocation)
        return { receipt, cause: invocation.cid, resource, bytes, servedAtMs: c.toMs(servedAt), space: space.did(), verifier }
      }

      test('nb {bytes: 100}: 100 bytes are recorded, 101 are Unauthorized', async () => {
        const proof = await grant({ bytes: 100 })
        const ok = await record(proof, await randomResource(), 100)
        await assertRecorded(ok.receipt, ok)

        const over = await record(proof, await randomResource(), 101)
        const error = await assertFailed(over.receipt, 'Unauthorized', verifier)
        assert.match(error.message, /bytes 101 is not the delegated bytes 100/)
        assert.equal((await fetchReceipt(server, over.cause)).status, 404, 'a refused record must not be stored')
      })

      test('nb {resource}: that resource is recorded, another is Unauthorized', async () => {
        const fixed = await randomResource()
        const proof = await grant({ resource: fixed })
        const ok = await record(proof, fixed, 2048)
        await assertRecorded(ok.receipt, ok)

        const other = await record(proof, await randomResource(), 2048)
        const error = await assertFailed(other.receipt, 'Unauthorized', verifier)
        assert.ok(error.message.includes(`is not the delegated resource ${fixed}`), error.message)
        assert.equal((await fetchReceipt(server, other.cause)).status, 404, 'a refused record must not be stored')
      })

      test('no nb: any resource and any bytes are recorded', async () => {
        const proof = await grant()
        for (const bytes of [1, 101, 987654]) {
          const ok = await record(proof, await randomResource(), bytes)
          await assertRecorded(ok.receipt, ok)
        }
      })
    })
  }
})
