// A js-libp2p 3 peer for Bzzz's interop tests. It prints one JSON object per line on stdout.
//
//   node peer.mjs interop <agent multiaddr>   dial, receive the agent's capability
//                                              announcements, publish one valid and one
//                                              forged announcement
//   node peer.mjs dial <agent multiaddr> [psk file]   dial (through pnet if a key is given)
//                                              and report whether the connection came up
//
// It stops by itself after BZZZ_JS_TIMEOUT_MS (default 20 s).

// Node 20 lacks Promise.withResolvers, which js-libp2p 3 uses.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const { readFileSync } = await import('node:fs')
const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { gossipsub } = await import('@libp2p/gossipsub')
const { preSharedKey } = await import('@libp2p/pnet')
const { multiaddr } = await import('@multiformats/multiaddr')
const { encode, decode } = await import('@msgpack/msgpack')

const TOPIC = 'bzzz/capabilities/1'
const [mode, target, pskFile] = process.argv.slice(2)
const timeoutMs = Number(process.env.BZZZ_JS_TIMEOUT_MS ?? 20000)
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

const options = {
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false })
  }
}
if (pskFile) {
  options.connectionProtector = preSharedKey({ psk: readFileSync(pskFile), timeout: 3000 })
}

const node = await createLibp2p(options)
await node.start()
const me = node.peerId.toString()
say({ event: 'started', peer_id: me })

const stopAll = async (code) => {
  try { await node.stop() } catch {}
  process.exit(code)
}
setTimeout(() => { say({ event: 'timeout' }); stopAll(3) }, timeoutMs)

let conn
try {
  conn = await node.dial(multiaddr(target), { signal: AbortSignal.timeout(5000) })
  say({ event: 'connected', remote: conn.remotePeer.toString() })
} catch (err) {
  say({ event: 'dial_failed', error: String(err?.message ?? err).slice(0, 200) })
  await stopAll(mode === 'dial' ? 0 : 2)
}

if (mode === 'dial') {
  await stopAll(0)
}

// interop: receive announcements, then publish
const pubsub = node.services.pubsub
let announced = false
pubsub.addEventListener('message', async (evt) => {
  const { topic, data, from } = evt.detail
  if (topic !== TOPIC) return
  let msg
  try { msg = decode(data) } catch { return }
  say({ event: 'announcement', from: from?.toString(), type: msg.type, node_id: msg.node_id,
        capabilities: msg.capabilities, addrs: msg.addrs, fields: Object.keys(msg).sort() })
  if (announced || msg.type !== 'capabilities') return
  announced = true
  const base = { v: 1, type: 'capabilities', ts: Date.now() / 1000, node_id: 'js-peer',
                 capabilities: ['javascript'], addrs: [], log_key: '', load: [0, 1] }
  // forged first (claims to be the agent), then a valid one
  await pubsub.publish(TOPIC, encode({ ...base, from: msg.from }))
  await pubsub.publish(TOPIC, encode({ ...base, from: me }))
  say({ event: 'published', forged: 1, valid: 1 })
})
pubsub.subscribe(TOPIC)
say({ event: 'subscribed' })
