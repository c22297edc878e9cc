// npm hypercore@11 doing what bench/hyperlog.py measures, in the same run, for comparison.
//
//   node bench/hypercore_compare.js appends N BATCH [BYTES]   appends/s (100-byte blocks)
//   node bench/hypercore_compare.js replicate N [BYTES]       verified blocks/s, in-process
//                                                             replication between two cores
//
// Uses the packages installed for the tests (tests/js, `make js-deps`). One JSON line.
const path = require('node:path')
const fs = require('node:fs')
const os = require('node:os')
const { createRequire } = require('node:module')

const req = createRequire(path.join(__dirname, '..', 'tests', 'js', 'package.json'))
const Hypercore = req('hypercore')

async function appends (n, batch, size) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bzzz-hc-bench-'))
  try {
    const core = new Hypercore(dir)
    await core.ready()
    const block = Buffer.alloc(size, 1)
    const many = new Array(batch).fill(block)
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i += batch) await core.append(batch === 1 ? block : many)
    const s = Number(process.hrtime.bigint() - t0) / 1e9
    await core.close()
    return { appends: n, batch, block_bytes: size, seconds: s, per_second: n / s }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

async function replicate (n, size) {
  const dirs = [0, 1].map(() => fs.mkdtempSync(path.join(os.tmpdir(), 'bzzz-hc-bench-')))
  try {
    const core = new Hypercore(dirs[0])
    await core.ready()
    const block = Buffer.alloc(size, 2)
    for (let i = 0; i < n; i += 1000) {
      await core.append(new Array(Math.min(1000, n - i)).fill(block))
    }
    const clone = new Hypercore(dirs[1], core.key)
    await clone.ready()
    const a = core.replicate(true)
    const b = clone.replicate(false)
    a.pipe(b).pipe(a)
    const t0 = process.hrtime.bigint()
    await clone.update({ wait: true })
    await clone.download({ start: 0, end: n }).done()
    const s = Number(process.hrtime.bigint() - t0) / 1e9
    const out = { blocks: n, block_bytes: size, seconds: s, per_second: n / s,
      mb_per_second: (n * size) / s / 1e6 }
    a.destroy()
    b.destroy()
    await clone.close()
    await core.close()
    return out
  } finally {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
  }
}

async function main () {
  const [cmd, n = '2000', batch = '1', size = '100'] = process.argv.slice(2)
  if (cmd === 'appends') {
    console.log(JSON.stringify(await appends(Number(n), Number(batch), Number(size))))
  } else if (cmd === 'replicate') {
    console.log(JSON.stringify(await replicate(Number(n), Number(batch === '1' ? 100 : batch))))
  } else {
    console.error('usage: hypercore_compare.js appends N BATCH [BYTES] | replicate N [BYTES]')
    process.exit(2)
  }
}
main()
