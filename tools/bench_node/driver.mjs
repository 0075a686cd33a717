// Benchmark driver for the original @platformatic/job-queue (0.5.0), same protocol as
// tools/bench_common.py: prints {"ready":true}, waits for "go" (or "stop" when serving)
// on stdin, prints {"result":{...}}. Started by tools/bench_node.py with the node 22 binary
// installed in .bench/node (PgStorage needs the `pg` package there too); JOBQUEUE_ORIGINAL is the absolute path of the package's dist/index.js.
import { createInterface } from 'node:readline'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

const { Queue, RedisStorage, PgStorage } = await import(pathToFileURL(process.env.JOBQUEUE_ORIGINAL).href)

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    jobs: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '50' },
    inflight: { type: 'string', default: '50' },
    prefix: { type: 'string', default: 'j' },
    queue: { type: 'string', default: 'bench' }
  }
})
const mode = positionals[0]
const jobs = Number(values.jobs)
const inflight = Number(values.inflight)
const WARMUP = 20

const emit = (fields) => process.stdout.write(JSON.stringify(fields) + '\n')

// lines are buffered from the start: readline drops lines that arrive before a listener
const lines = createInterface({ input: process.stdin })
const received = []
let closed = false
let wake = () => {}
lines.on('line', (line) => { received.push(line.trim()); wake() })
lines.on('close', () => { closed = true; wake() })
async function waitLine (...words) {
  for (;;) {
    while (received.length) {
      const word = received.shift()
      if (words.includes(word)) return word
    }
    if (closed) return 'eof'
    await new Promise((resolve) => { wake = resolve })
  }
}

function percentiles (samples) {
  const s = [...samples].sort((a, b) => a - b)
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))]
  const mid = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
  return { p50: mid, p95: at(0.95), p99: at(0.99) }
}

async function runInflight (total, lanes, one) {
  let next = 0
  const lane = async () => { while (next < total) { await one(next++) } }
  const started = performance.now()
  await Promise.all(Array.from({ length: Math.max(1, Math.min(lanes, total)) }, lane))
  return (performance.now() - started) / 1000
}

// a postgres:// or postgresql:// URL selects PgStorage (tables prefixed by the queue name), else RedisStorage
const storage = /^postgres(ql)?:/.test(values.url)
  ? new PgStorage({ connectionString: values.url, tablePrefix: `${values.queue.replace(/[^a-z0-9]/gi, '_')}_` })
  : new RedisStorage({ url: values.url, keyPrefix: `${values.queue}:` })
const queue = new Queue({
  storage,
  concurrency: Number(values.concurrency),
  blockTimeout: 1,
  resultTTL: 600_000
})
const handler = async (job) => job.payload.i

let result = {}
if (mode === 'produce') {
  await queue.start()
  emit({ ready: true })
  if (await waitLine('go') === 'go') {
    const seconds = await runInflight(jobs, inflight, async (i) => {
      const r = await queue.enqueue(`${values.prefix}${i}`, { i })
      if (r.status !== 'queued') throw new Error(`job ${i}: ${r.status}`)
    })
    result = { seconds, rate: jobs / seconds }
  }
} else if (mode === 'drain') {
  let count = 0
  let resolveDone
  const done = new Promise((resolve) => { resolveDone = resolve })
  queue.on('completed', () => { if (++count >= jobs) resolveDone() })
  await queue.start()
  emit({ ready: true })
  if (await waitLine('go') === 'go') {
    const started = performance.now()
    queue.execute(handler)
    await done
    const seconds = (performance.now() - started) / 1000
    result = { seconds, rate: jobs / seconds }
  }
} else if (mode === 'serve') {
  queue.execute(handler)
  await queue.start()
  emit({ ready: true })
  await waitLine('stop')
} else if (mode === 'latency' || mode === 'waiters') {
  await queue.start()
  const one = async (i) => {
    const value = await queue.enqueueAndWait(`${values.prefix}${i}`, { i }, { timeout: 30000 })
    if (value !== i) throw new Error(`job ${i}: got ${value}`)
  }
  for (let i = 0; i < WARMUP; i++) await one(-1 - i)
  emit({ ready: true })
  if (await waitLine('go') === 'go') {
    const samples = []
    const seconds = await runInflight(jobs, mode === 'latency' ? 1 : inflight, async (i) => {
      const start = performance.now()
      await one(i)
      samples.push(performance.now() - start)
    })
    result = { seconds, rate: jobs / seconds, ...percentiles(samples) }
  }
} else {
  throw new Error(`unknown mode ${mode}`)
}
emit({ result })
await queue.stop()
lines.close()
process.exit(0)
