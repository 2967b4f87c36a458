'use strict'

// The Hemera client of tests/interop/hemera_interop_test.cpp: runs a list of
// acts through a real nats-hemera 7.0.2 instance, one after another, and
// prints one JSON line per act.
//
//   node hemera-client.js <nats url> '<calls>'
//   node hemera-client.js <nats url> < calls.json
//
// <calls> is a JSON array of {"id": "<name>", "pattern": {...}}; the pattern
// is passed to hemera.act() as it is, `$` options included (timeout$, meta$,
// delegate$, trace$, pubsub$, expectedMessages$, ...). With "messages": n
// the call collects n replies of a stream and prints them as one array.
//
// Output, one line per call, in order:
//   {"id":..., "ok":true,  "result":..., "meta":..., "trace":..., "request":...}
//   {"id":..., "ok":false, "error":{"name","message","code","hops","class",...},
//    "meta":..., "trace":...[, "received": [...] the replies of a stream so far]}
// `meta`, `trace` and `request` are the act context after the reply: what the
// service sent back (Hemera copies them from the reply). `error.class` is the
// constructor Hemera rebuilt the error with (its registered errors, such as
// PatternNotFound, come back as instances of their own class). The process
// exits 0 once every call has been answered or has failed.

const NATS = require('nats')
const Hemera = require('nats-hemera')

const url = process.argv[2]
if (!url) {
  process.stderr.write("usage: node hemera-client.js <nats url> ['<calls json>']\n")
  process.exit(2)
}

function readCalls() {
  if (process.argv[3] !== undefined) return Promise.resolve(process.argv[3])
  return new Promise((resolve, reject) => {
    let text = ''
    process.stdin.setEncoding('utf8')
    process.stdin.on('data', chunk => (text += chunk))
    process.stdin.on('end', () => resolve(text))
    process.stdin.on('error', reject)
  })
}

// An error as plain data: every enumerable property but the stack, plus the
// name (on the prototype for Hemera's own errors) and the class.
function errorData(err) {
  const out = {}
  for (const key in err) {
    if (key !== 'stack' && typeof err[key] !== 'function') out[key] = err[key]
  }
  out.name = err.name
  out.message = err.message
  out.class = err.constructor ? err.constructor.name : null
  return out
}

function actOnce(hemera, call) {
  const wanted = call.messages || 1
  const results = []
  let finished = false
  return new Promise(resolve => {
    // Hemera 7 merges a top-level meta$ into the root instance's own meta$,
    // so it would travel with every later act; each call here stands alone.
    hemera.meta$ = {}
    hemera.act(call.pattern, function done(err, result) {
      if (finished) return
      if (!err) {
        results.push(result === undefined ? null : result)
        if (results.length < wanted) return
      }
      finished = true
      const line = {
        id: call.id,
        ok: !err,
        meta: this.meta$,
        trace: this.trace$,
        request: this.request$
      }
      if (err) {
        line.error = errorData(err)
        if (wanted > 1) line.received = results
      } else {
        line.result = wanted > 1 ? results : results[0]
      }
      resolve(line)
    })
  })
}

async function main() {
  const calls = JSON.parse(await readCalls())
  const nc = NATS.connect({ url })
  const hemera = new Hemera(nc, { logLevel: 'silent', name: 'hemera-client' })
  await hemera.ready()
  for (const call of calls) {
    const line = await actOnce(hemera, call)
    process.stdout.write(JSON.stringify(line) + '\n')
  }
  // close() flushes, so a last pubsub$ act has left before the exit.
  hemera.close(() => process.exit(0))
}

main().catch(err => {
  process.stderr.write(`hemera-client: ${err.stack || err}\n`)
  process.exit(1)
})
