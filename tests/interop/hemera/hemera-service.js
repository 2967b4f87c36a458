'use strict'

// The Hemera side of tests/interop/hemera_interop_test.cpp: a real
// nats-hemera 7.0.2 service on the nats 1.x client.
//
//   node hemera-service.js <nats url> [app name]
//
// Prints one JSON object per line on stdout:
//   {"event":"ready"}                       all patterns are subscribed on the server
//   {"event":"pubsub", ...}                 a `pubsub$` message arrived on topic `news`
// It exits when its stdin closes (the test process is gone) or on SIGTERM.
//
// Patterns (topic `calc` unless said otherwise):
//   cmd:add|sub|mul   {a, b}          -> a op b
//   cmd:div           {a, b}          -> a / b; b = 0 fails with MathError
//                                        "division by zero", code DIVISION_BY_ZERO
//   cmd:fail          {message, code} -> a plain Error with that message and code
//   cmd:slow          {ms}            -> {slept: ms}, after ms milliseconds
//   cmd:echo                          -> what the handler saw: pattern, meta$,
//                                        delegate$, trace$, request$; sets
//                                        meta$.seenBy to the app name
//   cmd:relay         {call}          -> acts `call` (a nested act, usually back
//                                        into Switchboard) and answers
//                                        {result, trace}: the nested result and
//                                        the trace$ this handler received; a
//                                        nested error is passed on as it came
//   cmd:count         {n}             -> a stream: the replies 1, 2, ..., n
//   cmd:sharedCount                   -> how many `shared` requests this
//                                        process served
//   cmd:nothing                       -> answers with no result at all (cb())
//   topic:sensors.* cmd:read          -> {sensor: <the topic acted on>}
//   topic:shared cmd:who              -> {by: "hemera"}; also served by
//                                        Switchboard, in queue group queue.shared
//   topic:news pubsub$                -> prints a "pubsub" event

const NATS = require('nats')
const Hemera = require('nats-hemera')

const url = process.argv[2]
const name = process.argv[3] || 'hemera-calc'
if (!url) {
  process.stderr.write('usage: node hemera-service.js <nats url> [app name]\n')
  process.exit(2)
}

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n')
}

const nc = NATS.connect({ url })
const hemera = new Hemera(nc, { logLevel: 'silent', name })
const MathError = Hemera.createError('MathError')
let sharedCount = 0

hemera.ready(err => {
  if (err) {
    process.stderr.write(`hemera-service: ${err.stack || err}\n`)
    process.exit(1)
  }

  hemera.add({ topic: 'calc', cmd: 'add' }, (req, cb) => cb(null, req.a + req.b))
  hemera.add({ topic: 'calc', cmd: 'sub' }, (req, cb) => cb(null, req.a - req.b))
  hemera.add({ topic: 'calc', cmd: 'mul' }, (req, cb) => cb(null, req.a * req.b))
  hemera.add({ topic: 'calc', cmd: 'div' }, (req, cb) => {
    if (req.b === 0) {
      cb(new MathError('division by zero', { code: 'DIVISION_BY_ZERO' }))
      return
    }
    cb(null, req.a / req.b)
  })
  hemera.add({ topic: 'calc', cmd: 'fail' }, (req, cb) => {
    const error = new Error(req.message || 'boom')
    if (req.code !== undefined) error.code = req.code
    cb(error)
  })
  hemera.add({ topic: 'calc', cmd: 'slow' }, (req, cb) => {
    setTimeout(() => cb(null, { slept: req.ms }), req.ms)
  })
  // `function`, not an arrow: Hemera binds the request context to `this`.
  hemera.add({ topic: 'calc', cmd: 'echo' }, function echo(req, cb) {
    const seen = {
      pattern: req,
      meta: Object.assign({}, this.meta$),
      delegate: this.delegate$,
      trace: this.trace$,
      request: this.request$
    }
    this.meta$.seenBy = name
    cb(null, seen)
  })
  hemera.add({ topic: 'calc', cmd: 'relay' }, function relay(req, cb) {
    const trace = Object.assign({}, this.trace$)
    this.act(req.call, (err, result) => {
      if (err) {
        cb(err)
        return
      }
      cb(null, { result, trace })
    })
  })
  hemera.add({ topic: 'calc', cmd: 'count' }, function count(req) {
    for (let i = 1; i <= req.n; i++) this.reply.next(i)
  })
  hemera.add({ topic: 'calc', cmd: 'nothing' }, (req, cb) => cb())
  hemera.add({ topic: 'sensors.*', cmd: 'read' }, (req, cb) => cb(null, { sensor: req.topic }))
  hemera.add({ topic: 'calc', cmd: 'sharedCount' }, (req, cb) => cb(null, sharedCount))
  hemera.add({ topic: 'shared', cmd: 'who' }, (req, cb) => {
    sharedCount += 1
    cb(null, { by: 'hemera' })
  })
  hemera.add({ topic: 'news', pubsub$: true }, function news(req) {
    emit({
      event: 'pubsub',
      pattern: req,
      meta: this.meta$,
      delegate: this.delegate$,
      trace: this.trace$,
      request: this.request$
    })
  })

  // The SUBs are on the server once a PING after them has its PONG.
  nc.flush(() => emit({ event: 'ready', name }))
})

process.stdin.resume()
process.stdin.on('end', () => process.exit(0))
process.on('SIGTERM', () => process.exit(0))
