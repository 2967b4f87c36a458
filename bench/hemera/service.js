'use strict'
// The Hemera side's service of the NATS act benchmark (docs/benchmarks.md,
// "NATS act"): nats-hemera 7.0.2 on the nats 1.2 client with default
// options, adding {topic: 'math', cmd: 'add'} -> a + b with a callback
// handler. Prints "ready" once the server has the subscription; runs until
// SIGTERM.
//
//   node service.js --url=nats://127.0.0.1:PORT
const Hemera = require('nats-hemera')
const Nats = require('nats')
const { parseOptions } = require('./common')

const o = parseOptions(process.argv.slice(2))
const nats = Nats.connect({ url: o.url })
const hemera = new Hemera(nats, { logLevel: 'silent', name: 'math-service' })

hemera.ready(err => {
  if (err) throw err
  hemera.add({ topic: 'math', cmd: 'add' }, function (req, cb) {
    cb(null, req.a + req.b)
  })
  nats.flush(() => console.log('ready'))
})

process.on('SIGTERM', () => hemera.close(() => process.exit(0)))
