// npm hypercore@11 doing what bench/hyperlog.py measures, in the same run, for comparison.
//
//   node bench/hypercore_compare.js appends N BATCH   durable appends/s of 100-byte blocks
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

async function main () {
  const [cmd, n = '2000', batch = '1', size = '100'] = process.argv.slice(2)
  if (cmd !== 'appends') {
    console.error('usage: hypercore_compare.js appends N BATCH [BLOCK_BYTES]')
    process.exit(2)
  }
  console.log(JSON.stringify(await appends(Number(n), Number(batch), Number(size))))
}
main()
