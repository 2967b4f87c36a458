'use strict'
// The bloomrun side of the router benchmark: the same pattern sets and lookup
// objects as bench/router_bench.cpp (it writes them with --generate=DIR),
// through bloomrun with `indexing: 'depth'`, as Hemera configures it.
//
//   node router_bench.js DIR [SIZE ...]
//
// For each set: adds pattern i with payload i + 1 (the reference's index),
// checks every lookup against the reference answer and writes its answers to
// DIR/bloomrun_answers_<N>.json, then times passes over all lookups for at
// least MIN_SECONDS of CPU time and prints one JSON line per set.

const fs = require('fs')
const path = require('path')
const bloomrun = require('bloomrun')

const MIN_SECONDS = Number(process.env.BENCH_MIN_SECONDS || 1)
const WARMUP_SECONDS = 0.3

// Times whole passes over the lookups until MIN_SECONDS of CPU time have
// gone by. CPU time (this process's, V8's collector threads included), as on
// the C++ side: the machine is shared, and wall time counts other work.
function cpuNs () {
  const u = process.cpuUsage()
  return (u.user + u.system) * 1000
}

function timePasses (router, objects, seconds) {
  let lookups = 0
  let sink = 0
  const limit = seconds * 1e9
  const wallStart = process.hrtime.bigint()
  const cpuStart = cpuNs()
  let cpu = 0
  do {
    for (let i = 0; i < objects.length; i++) {
      const r = router.lookup(objects[i])
      if (r !== null) sink += r
    }
    lookups += objects.length
    cpu = cpuNs() - cpuStart
  } while (cpu < limit)
  const wall = Number(process.hrtime.bigint() - wallStart)
  return { lookups, cpu, wall, sink }
}

function run (dir, size) {
  const set = JSON.parse(fs.readFileSync(path.join(dir, `router_${size}.json`), 'utf8'))
  const router = bloomrun({ indexing: 'depth' })
  set.patterns.forEach((p, i) => router.add(p, i + 1))

  const objects = set.lookups.map((l) => l.object)
  const answers = objects.map((o) => router.lookup(o))
  let mismatches = 0
  answers.forEach((a, i) => {
    if (a !== set.lookups[i].expect) mismatches++
  })
  fs.writeFileSync(path.join(dir, `bloomrun_answers_${size}.json`), JSON.stringify(answers) + '\n')

  timePasses(router, objects, WARMUP_SECONDS)
  const t = timePasses(router, objects, MIN_SECONDS)
  return {
    name: `bloomrun_lookup/${size}`,
    patterns: set.patterns.length,
    lookups: objects.length,
    misses: set.misses,
    mismatches,
    ns_per_lookup: t.cpu / t.lookups,
    lookups_per_second: t.lookups / (t.cpu / 1e9),
    wall_lookups_per_second: t.lookups / (t.wall / 1e9),
    sink: t.sink
  }
}

function main () {
  const [dir, ...sizes] = process.argv.slice(2)
  if (!dir) {
    console.error('usage: node router_bench.js DIR [SIZE ...]')
    process.exit(2)
  }
  const wanted = sizes.length ? sizes.map(Number) : [10, 1000, 10000]
  const bloomrunVersion = require('bloomrun/package.json').version
  for (const size of wanted) {
    const result = run(dir, size)
    result.bloomrun = bloomrunVersion
    result.node = process.version
    console.log(JSON.stringify(result))
  }
}

main()
