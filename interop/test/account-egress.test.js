// Case: a customer's agent asks account/egress/get (@storacha/capabilities
// AccountEgress.get) for the egress of its spaces, with the grant an operator
// made with `egressd account grant`: the account's delegation to the agent
// and the service's ucan/attest of it, as Storacha's access/claim hands them
// out. The figures must be what the gateway recorded, per space and UTC day.

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { after, before, describe, test } from 'node:test'
import { AccountEgress, Space } from '@storacha/capabilities'
import { Delegation } from '@ucanto/core'
import { ed25519 } from '@ucanto/principal'
import { CID } from 'multiformats/cid'
import { base64 } from 'multiformats/bases/base64'
import { egressdBinary, startEgressd } from '../lib/egressd.js'
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

const execFileP = promisify(execFile)
const DAY = 24 * 60 * 60 * 1000
const OTHER = 'did:mailto:example.com:bob'

/** A proof line of `egressd account grant` (or `delegate`) as a delegation. */
async function parseProof (line) {
  const cid = CID.parse(line.trim(), base64)
  const { ok, error } = await Delegation.extract(cid.multihash.digest)
  if (error) throw error
  return ok
}

/** The day of a time, YYYY-MM-DD in UTC. */
const dayOf = ms => new Date(ms).toISOString().slice(0, 10)

describe('account/egress/get', () => {
  /** @type {import('../lib/egressd.js').Egressd} */
  let server
  let verifier
  let connection
  let bin
  const spaces = []
  /** What was recorded: space -> day -> bytes. */
  const expected = new Map()

  async function grant (customer, audience, ...flags) {
    const { stdout } = await execFileP(bin, [
      'account', 'grant', '--data-dir', server.dataDir, '--customer', customer, '--audience', audience, ...flags
    ])
    const lines = stdout.trim().split('\n')
    assert.equal(lines.length, 2, `account grant printed ${lines.length} lines, want the delegation and its attestation`)
    return Promise.all(lines.map(parseProof))
  }

  function egressGet (agent, proofs, nb = {}, account = CUSTOMER) {
    return AccountEgress.get
      .invoke({ issuer: agent, audience: connection.id, with: account, nb, proofs, nonce: nonce() })
      .execute(connection)
  }

  before(async () => {
    server = await startEgressd()
    verifier = serviceVerifier(server.did)
    connection = connectTo(server)
    bin = await egressdBinary()

    // Two spaces of the customer, one of another customer; records on
    // three different days.
    const now = Date.now()
    const plan = [
      [0, now - 3 * DAY, 1000], [0, now - 3 * DAY, 24], [0, now - DAY, 500],
      [1, now, 7], [1, now - 3 * DAY, 3]
    ]
    for (let i = 0; i < 3; i++) {
      const space = await newSpace()
      await server.provision(space.did(), i < 2 ? CUSTOMER : OTHER)
      spaces.push(space)
    }
    plan.push([2, now, 99])
    for (const [i, servedAt, bytes] of plan) {
      const space = spaces[i]
      const gateway = await ed25519.generate()
      const proof = await Space.contentServe.delegate({ issuer: space, audience: gateway, with: space.did(), expiration: Infinity })
      const res = await Space.egressRecord.invoke({
        issuer: gateway,
        audience: connection.id,
        with: space.did(),
        nb: { resource: await randomResource(), bytes, servedAt },
        expiration: Infinity,
        nonce: nonce(),
        proofs: [proof]
      }).execute(connection)
      assert.equal(res.out.error, undefined, `record failed: ${JSON.stringify(res.out.error)}`)
      if (i < 2) {
        const days = expected.get(space.did()) ?? new Map()
        days.set(dayOf(servedAt), (days.get(dayOf(servedAt)) ?? 0) + bytes)
        expected.set(space.did(), days)
      }
    }
  })

  after(async () => {
    await server?.stop()
  })

  test('an agent with a grant gets its spaces per day', async () => {
    const agent = await ed25519.generate()
    const proofs = await grant(CUSTOMER, agent.did())
    const total = [...expected.values()].flatMap(d => [...d.values()]).reduce((a, b) => a + b, 0)

    // The worker counts the events into the ledger shortly after they are queued.
    let res
    for (let tries = 0; tries < 300; tries++) {
      res = await egressGet(agent, proofs)
      assert.equal(res.out.error, undefined, `account/egress/get failed: ${JSON.stringify(res.out.error)}`)
      if (res.out.ok.total === total) break
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    await assertSignedBy(res, verifier)
    assert.equal(res.out.ok.total, total)
    assert.deepEqual(Object.keys(res.out.ok.spaces).sort(), [...expected.keys()].sort(),
      'only the spaces the customer pays for')
    for (const [space, days] of expected) {
      const got = res.out.ok.spaces[space]
      const want = [...days.entries()].sort().map(([date, egress]) => ({ date, egress }))
      assert.deepEqual(got.dailyStats, want, `days of ${space}`)
      assert.equal(got.total, want.reduce((a, d) => a + d.egress, 0))
    }

    // One space, one day.
    const [first] = spaces
    const day = [...expected.get(first.did()).keys()].sort()[0]
    const next = dayOf(Date.parse(day) + DAY)
    const one = await egressGet(agent, proofs, { spaces: [first.did()], period: { from: day, to: next } })
    assert.deepEqual(one.out.ok, {
      total: expected.get(first.did()).get(day),
      spaces: { [first.did()]: { total: expected.get(first.did()).get(day), dailyStats: [{ date: day, egress: expected.get(first.did()).get(day) }] } }
    })
  })

  test('named failures', async () => {
    const agent = await ed25519.generate()
    const proofs = await grant(CUSTOMER, agent.did())
    await assertFailed(await egressGet(agent, proofs, { spaces: [spaces[2].did()] }), 'SpaceUnauthorized', verifier)
    await assertFailed(await egressGet(agent, proofs, { period: { from: '2026-02-01', to: '2026-01-01' } }), 'PeriodNotAcceptable', verifier)
    await assertFailed(await egressGet(agent, proofs, { period: { from: '2020-01-01', to: '2026-01-01' } }), 'PeriodNotAcceptable', verifier)
    await assertFailed(await egressGet(agent, proofs, { period: { from: 'yesterday', to: '2026-01-01' } }), 'PeriodNotAcceptable', verifier)

    const nobody = 'did:mailto:example.com:nobody'
    const strangerProofs = await grant(nobody, agent.did())
    await assertFailed(await egressGet(agent, strangerProofs, {}, nobody), 'AccountNotFound', verifier)
  })

  test('only a grant this service attested authorizes', async () => {
    const agent = await ed25519.generate()
    const [delegation, attestation] = await grant(CUSTOMER, agent.did())

    // The account's delegation alone proves nothing: the account has no key.
    await assertFailed(await egressGet(agent, [delegation]), 'Unauthorized', verifier)

    // A grant for another account.
    const other = await grant(OTHER, agent.did())
    await assertFailed(await egressGet(agent, other), 'Unauthorized', verifier)

    // An attestation by another service's key.
    const { stdout } = await execFileP(bin, ['key', 'generate'])
    const otherKey = stdout.trim().split('\n')[1]
    const forged = await grant(CUSTOMER, agent.did(), '--key', otherKey)
    await assertFailed(await egressGet(agent, forged), 'Unauthorized', verifier)
    await assertFailed(await egressGet(agent, [delegation, forged[1]]), 'Unauthorized', verifier)

    // A grant to another agent.
    const thief = await ed25519.generate()
    await assertFailed(await egressGet(thief, [delegation, attestation]), 'Unauthorized', verifier)

    // An expired grant.
    const expired = await grant(CUSTOMER, agent.did(), '--expiration', '1s')
    await new Promise(resolve => setTimeout(resolve, 2100))
    await assertFailed(await egressGet(agent, expired), 'Unauthorized', verifier)
  })
})
