'use strict'
// The Hemera side's client of the NATS act benchmark (docs/benchmarks.md,
// "NATS act"): nats-hemera 7.0.2 on the nats 1.2 client with default
// options, hemera.act({topic: 'math', cmd: 'add', a, b}, callback). The same
// phases and report as bench/nats/bench_common.hpp; prints one JSON line.
//
//   node client.js --url=nats://... [--seconds=S --warmup=W --inflight=N
//                  --pids=service:PID,server:PID]
const Hemera = require('nats-hemera')
const Nats = require('nats')
const { parseOptions, operands, sampleCpu, cpuDelta } = require('./common')

const o = parseOptions(process.argv.slice(2))
const nats = Nats.connect({ url: o.url })
const hemera = new Hemera(nats, { logLevel: 'silent', name: 'bench-client' })

const nowNs = () => process.hrtime.bigint()
const report = {
  impl: 'hemera',
  details:
    `nats-hemera ${require('nats-hemera/package.json').version}, ` +
    `nats ${require('nats/package.json').version}, node ${process.versions.node}`,
  one: {},
  many: {},
  checked: 0,
  mismatches: 0,
  errors: 0,
  first_problem: ''
}
let seq = 0

function check (err, result, sum) {
  report.checked++
  if (err) report.errors++
  else if (result !== sum) report.mismatches++
  else return
  if (!report.first_problem) {
    report.first_problem = err ? `${err.name}: ${err.message}` : `got ${result}, expected ${sum}`
  }
}

// Sends the next request; then(latencyNs) after its reply was checked.
function act (then) {
  const { a, b } = operands(seq++)
  const started = nowNs()
  hemera.act({ topic: 'math', cmd: 'add', a, b }, (err, result) => {
    const latency = nowNs() - started
    check(err, result, a + b)
    then(latency)
  })
}

function percentileUs (sorted, p) {
  if (!sorted.length) return 0
  const rank = Math.min(Math.round((p / 100) * (sorted.length - 1)), sorted.length - 1)
  return Number(sorted[rank]) / 1000
}

function phaseOne (done) {
  const latencies = []
  let measuring = false
  let end = nowNs() + BigInt(Math.round(o.warmup * 1e9))
  const next = () =>
    act(latency => {
      if (measuring) latencies.push(latency)
      const now = nowNs()
      if (now < end) return next()
      if (!measuring) {
        measuring = true
        end = now + BigInt(Math.round(o.seconds * 1e9))
        return next()
      }
      latencies.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0))
      const mean = latencies.reduce((s, v) => s + Number(v), 0) / latencies.length / 1000
      report.one = {
        count: latencies.length,
        p50_us: percentileUs(latencies, 50),
        p99_us: percentileUs(latencies, 99),
        mean_us: mean
      }
      done()
    })
  next()
}

function phaseMany (done) {
  let stop = false
  let outstanding = 0
  let completed = 0
  let start, cpuStart, countStart
  const send = () => {
    outstanding++
    act(() => {
      outstanding--
      completed++
      if (!stop) return send()
      if (outstanding === 0) done()
    })
  }
  setTimeout(() => {
    start = nowNs()
    cpuStart = sampleCpu(o.pids)
    countStart = completed
    setTimeout(() => {
      const seconds = Number(nowNs() - start) / 1e9
      report.many = {
        count: completed - countStart,
        seconds,
        rps: (completed - countStart) / seconds,
        cpu_seconds: cpuDelta(cpuStart, sampleCpu(o.pids))
      }
      stop = true
    }, o.seconds * 1000)
  }, o.warmup * 1000)
  for (let i = 0; i < o.inflight; i++) send()
}

hemera.ready(err => {
  if (err) throw err
  phaseOne(() =>
    phaseMany(() => {
      console.log(JSON.stringify(report))
      hemera.close(() => process.exit(0))
    })
  )
})
