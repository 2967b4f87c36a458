'use strict'
// What bench/hemera/service.js and client.js share with the C++ sides
// (bench/nats/bench_common.hpp): the command line, the operands of each
// request and the CPU time of the processes taking part. Keep them in step.
const fs = require('fs')

function parseOptions (argv) {
  const o = { url: 'nats://127.0.0.1:4222', seconds: 2, warmup: 0.5, inflight: 256, pids: '' }
  for (const arg of argv) {
    const m = /^--([^=]+)=(.*)$/.exec(arg)
    if (!m) throw new Error(`expected --key=value, got ${arg}`)
    const [, key, value] = m
    o[key] = ['seconds', 'warmup', 'inflight'].includes(key) ? Number(value) : value
  }
  return o
}

// splitmix64, as nats_bench::operands: request i has a = mix(2i) % 1e6 and
// b = mix(2i + 1) % 1e6.
const MASK = (1n << 64n) - 1n
function mix (z) {
  z = (z + 0x9e3779b97f4a7c15n) & MASK
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK
  return z ^ (z >> 31n)
}
function operands (i) {
  const n = BigInt(i)
  return { a: Number(mix(2n * n) % 1000000n), b: Number(mix(2n * n + 1n) % 1000000n) }
}

// CPU seconds (user + system) of a process, from /proc/<pid>/stat (100 ticks/s).
function cpuSeconds (pid) {
  const text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  // fields[0] is field 3 (state): utime is field 14, stime 15.
  return (Number(fields[11]) + Number(fields[12])) / 100
}
function sampleCpu (pids) {
  const out = { client: cpuSeconds(process.pid) }
  for (const item of pids.split(',').filter(Boolean)) {
    const [name, pid] = item.split(':')
    out[name] = cpuSeconds(pid)
  }
  return out
}
function cpuDelta (before, after) {
  const out = {}
  for (const name of Object.keys(after)) out[name] = after[name] - (before[name] || 0)
  return out
}

module.exports = { parseOptions, operands, sampleCpu, cpuDelta }
