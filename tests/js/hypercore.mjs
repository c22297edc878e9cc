// Hypercore 11's own code, checking Bzzz logs and writing logs for Bzzz to check.
//
//   node hypercore.mjs verify < export.json     verify `bzzz log export --json` output:
//                                                 core key, tree hash and head signature
//   node hypercore.mjs write SEEDHEX < blocks.json   write a core with the key pair of the
//                                                 seed and the given blocks (hex list); print
//                                                 its key, tree hash and signature
//
// One JSON object on stdout.
import { createRequire } from 'node:module'
import { mkdtempSync, rmSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const require = createRequire(import.meta.url)
const Hypercore = require('hypercore')
const crypto = require('hypercore-crypto')
const caps = require('hypercore/lib/caps.js')
const Verifier = require('hypercore/lib/verifier.js')
const flat = require('flat-tree')
const c = require('compact-encoding')
const { multiSignature } = require('hypercore/lib/messages.js')

const hex = (b) => Buffer.from(b).toString('hex')
const unhex = (s) => Buffer.from(s, 'hex')
const stdin = () => JSON.parse(readFileSync(0, 'utf8'))

function treeOf (blocks) {
  // every node of the flat tree, then the full roots, with hypercore-crypto's hashes
  const nodes = new Map()
  blocks.forEach((b, i) => nodes.set(2 * i, { index: 2 * i, size: b.length, hash: crypto.data(b) }))
  for (let depth = 1; ; depth++) {
    let added = false
    for (const n of [...nodes.values()]) {
      if (flat.depth(n.index) !== depth - 1) continue
      const sib = nodes.get(flat.sibling(n.index))
      const p = flat.parent(n.index)
      if (!sib || nodes.has(p)) continue
      nodes.set(p, { index: p, size: n.size + sib.size, hash: crypto.parent(n, sib) })
      added = true
    }
    if (!added) break
  }
  return flat.fullRoots(2 * blocks.length).map((i) => nodes.get(i))
}

async function main () {
  const cmd = process.argv[2]
  if (cmd === 'verify') {
    const e = stdin()
    const manifest = Verifier.defaultSignerManifest(unhex(e.public_key))
    const key = Verifier.manifestHash(manifest)
    const blocks = e.blocks.map(unhex)
    const treeHash = blocks.length ? crypto.tree(treeOf(blocks)) : null
    const signable = caps.treeSignable(key, unhex(e.tree_hash), e.length, e.fork)
    console.log(JSON.stringify({
      key_ok: hex(key) === e.key,
      tree_ok: treeHash !== null && hex(treeHash) === e.tree_hash,
      signature_ok: crypto.verify(signable, unhex(e.signature), unhex(e.public_key)),
      length_ok: blocks.length === e.length
    }))
  } else if (cmd === 'write') {
    const keyPair = crypto.keyPair(unhex(process.argv[3]))
    const blocks = stdin().map(unhex)
    const dir = mkdtempSync(join(tmpdir(), 'bzzz-hc-'))
    try {
      const core = new Hypercore(dir, { keyPair, compat: false })
      await core.ready()
      if (blocks.length) await core.append(blocks)
      const treeHash = await core.treeHash()
      // stored as a (single-signer) multisig proof; the Ed25519 signature is inside
      let signature = core.core.state.signature
      if (signature && signature.byteLength !== 64) {
        signature = c.decode(multiSignature, signature).proofs[0].signature
      }
      console.log(JSON.stringify({
        key: hex(core.key), public_key: hex(keyPair.publicKey), length: core.length,
        tree_hash: hex(treeHash), signature: signature ? hex(signature) : null
      }))
      await core.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  } else {
    console.error('usage: hypercore.mjs verify|write SEEDHEX')
    process.exit(2)
  }
}
await main()
