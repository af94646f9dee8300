// Keeps the reference server honest: a ratio against a server that accepts
// what upload-api refuses would flatter egressd. This starts server.js on a
// free port with a fresh service key and two spaces, sends one good invocation
// and the bad ones upload-api refuses, and fails unless each outcome is the
// expected one and every receipt is signed by the service.
// Usage: node bench/peer/check.js   (bench.sh --peer runs it before measuring)

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Space } from '@storacha/capabilities'
import { createLink, delegate, invoke, Message, sha256 } from '@ucanto/core'
import { ed25519 } from '@ucanto/principal'
import { CAR } from '@ucanto/transport'

const dir = mkdtempSync(join(tmpdir(), 'egressd-peer-check-'))
const service = await ed25519.generate()
const [space, stranger, unprovisioned, gateway] = await Promise.all([1, 2, 3, 4].map(() => ed25519.generate()))
writeFileSync(join(dir, 'service.key'), ed25519.format(service))
writeFileSync(join(dir, 'spaces.json'), JSON.stringify({
  provider: service.did(),
  customer: 'did:mailto:check.example:peer',
  spaces: [{ did: space.did() }, { did: stranger.did() }]
}))

const port = String(20000 + Math.floor(Math.random() * 20000))
const child = spawn(process.execPath, [new URL('server.js', import.meta.url).pathname,
  '--key', join(dir, 'service.key'), '--seed', join(dir, 'spaces.json'), '--port', port], { stdio: ['ignore', 'pipe', 'inherit'] })
await new Promise((resolve, reject) => {
  child.stdout.once('data', resolve)
  child.once('exit', (code) => reject(new Error(`server.js exited with ${code}`)))
})

const resource = createLink(0x55, await sha256.digest(new Uint8Array([1, 2, 3])))
const nb = { resource, bytes: 10, servedAt: Date.now() }
const serve = (issuer, audience) => delegate({ issuer, audience, capabilities: [{ can: 'space/content/serve/*', with: issuer.did() }] })
const proof = await serve(space, gateway)
const record = (fields) => ({ issuer: gateway, audience: service, capability: { can: Space.egressRecord.can, with: space.did(), nb }, proofs: [proof], ...fields })

const cases = [
  ['ok', record({}), null],
  ['a proof from another space', record({ capability: { can: Space.egressRecord.can, with: stranger.did(), nb } }), 'Unauthorized'],
  ['no proof', record({ proofs: [] }), 'Unauthorized'],
  ['a proof for someone else', record({ proofs: [await serve(space, stranger)] }), 'Unauthorized'],
  ['addressed to another service', record({ audience: stranger }), 'InvalidAudience'],
  ['bytes 0', record({ capability: { can: Space.egressRecord.can, with: space.did(), nb: { ...nb, bytes: 0 } } }), 'Unauthorized'],
  ['expired', record({ expiration: 1000 }), 'Unauthorized'],
  ['a space without a consumer', { issuer: unprovisioned, audience: service, capability: { can: Space.egressRecord.can, with: unprovisioned.did(), nb } }, 'ConsumerNotFound'],
  ['a bad signature', record({}), 'Unauthorized']
]

try {
  for (const [name, fields, want] of cases) {
    const inv = await invoke(fields).buildIPLDView()
    if (name === 'a bad signature') {
      // Sign with the right issuer's DID but another key: the validator must check it.
      const forged = await invoke({ ...fields, issuer: (await ed25519.generate()).withDID(gateway.did()) }).buildIPLDView()
      assert.equal(forged.issuer.did(), inv.issuer.did())
      await expect(name, forged, want)
    } else {
      await expect(name, inv, want)
    }
  }
  console.log(`bench/peer: all ${cases.length} cases answered as upload-api answers them`)
} finally {
  child.kill()
  rmSync(dir, { recursive: true, force: true })
}

async function expect (name, inv, want) {
  const req = await CAR.outbound.encoder.encode(await Message.build({ invocations: [inv] }))
  const res = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers: req.headers, body: req.body })
  assert.equal(res.status, 200, name)
  const reply = await CAR.response.decode({ headers: Object.fromEntries(res.headers), body: new Uint8Array(await res.arrayBuffer()) })
  const receipt = reply.get(inv.cid)
  assert.ok((await receipt.verifySignature(service.verifier)).ok, `${name}: receipt not signed by the service`)
  assert.equal(receipt.out.error?.name ?? null, want, `${name}: ${JSON.stringify(receipt.out.error?.message ?? receipt.out.ok)}`)
}
