// Real WatermelonDB client databases (LokiJS adapter, in memory) syncing with a Lianhu server through
// WatermelonDB's own synchronize(), driven by the Python end-to-end tests.
//
// One JSON command a line on stdin, one JSON answer a line on stdout:
//   {"cmd": "open", "name": "a", "url": "...", "token": "...", "version": 1}
//   {"cmd": "create"|"update", "name": "a", "table": "...", "id": "...", "set": {...}}
//   {"cmd": "remove", "name": "a", "table": "...", "id": "..."}
//   {"cmd": "sync", "name": "a", "sendCreatedAsUpdated": true}  (the default: the flag Lianhu advises)
//   {"cmd": "all", "name": "a", "table": "..."}      -> raw records as the local database holds them
//   {"cmd": "migrate", "name": "a"}                   -> reopen the same data at schema version 2
//   {"cmd": "errors"}                                 -> what WatermelonDB logged as errors so far
'use strict'

const crypto = require('crypto')
const readline = require('readline')

const { Database, Model, appSchema, tableSchema } = require('@nozbe/watermelondb')
const LokiJSAdapter = require('@nozbe/watermelondb/adapters/lokijs').default
const { synchronize } = require('@nozbe/watermelondb/sync')
const { schemaMigrations, addColumns } = require('@nozbe/watermelondb/Schema/migrations')
const { setGenerator } = require('@nozbe/watermelondb/utils/common/randomId')

// Lianhu's records are identified by UUIDs, made by whoever creates them.
setGenerator(() => crypto.randomUUID())

// What WatermelonDB reports as errors (it logs, rather than throws, what it can recover from): kept,
// so that a test can tell that the server spoke the contract without WatermelonDB complaining.
// stdout carries the answers alone: WatermelonDB's own log lines go to stderr.
console.log = console.info = console.warn = (...args) => process.stderr.write(args.join(' ') + '\n')
const loggedErrors = []
const consoleError = console.error
console.error = (...args) => {
  loggedErrors.push(args.map((a) => (a && a.message) || String(a)).join(' '))
  consoleError(...args)
}

const s = (name) => ({ name, type: 'string', isOptional: true })
const n = (name) => ({ name, type: 'number', isOptional: true })
const b = (name) => ({ name, type: 'boolean', isOptional: true })
const bookkeeping = [n('version'), s('author_id'), { name: 'created_at', type: 'number' }, { name: 'updated_at', type: 'number' }]

function tables(version) {
  const householdColumns = [s('area_id'), s('address'), s('head_name'), s('phone'), s('tags'),
    b('offline_served'), b('sms_consent'), n('visit_interval_days'), s('member_id')]
  if (version >= 2) householdColumns.push(s('notes')) // the column schema version 2 brought
  return [
    tableSchema({ name: 'households', columns: [...householdColumns, ...bookkeeping] }),
    tableSchema({ name: 'residents', columns: [s('household_id'), s('name'), s('gender'), n('birth_year'),
      s('phone'), s('relation'), s('tags'), s('status'), ...bookkeeping] }),
    tableSchema({ name: 'visits', columns: [s('household_id'), n('visited_at'), s('kind'), s('summary'),
      s('observations'), n('duration_minutes'), s('location'), s('attachments'), s('review_state'),
      ...bookkeeping] }),
    tableSchema({ name: 'assistance_logs', columns: [s('household_id'), s('resident_id'), s('category'),
      s('description'), n('minutes'), n('occurred_at'), s('attachments'), ...bookkeeping] }),
    tableSchema({ name: 'requests', columns: [s('household_id'), s('resident_id'), s('visit_id'),
      s('category'), s('description'), s('urgency'), s('status'), s('source'), s('handler'), n('raised_at'),
      n('due_at'), s('resolution'), n('resolved_at'), n('feedback_due_at'), n('closed_at'),
      n('satisfaction'), ...bookkeeping] }),
    tableSchema({ name: 'request_events', columns: [s('request_id'), s('household_id'), s('action'),
      s('note'), s('channel'), n('satisfaction'), n('occurred_at'), n('effective_at'), s('handler'),
      n('due_at'), ...bookkeeping] }),
    tableSchema({ name: 'tasks', columns: [s('kind'), s('household_id'), s('request_id'), s('member_id'),
      s('message'), n('due_at'), s('status'), n('done_at'), ...bookkeeping] }),
    tableSchema({ name: 'reviews', columns: [s('visit_id'), s('household_id'), s('decision'), s('comment'),
      s('reviewer_id'), s('summary'), ...bookkeeping] }),
  ]
}

const schemas = { 1: appSchema({ version: 1, tables: tables(1) }), 2: appSchema({ version: 2, tables: tables(2) }) }
const noMigrationsYet = schemaMigrations({ migrations: [] }) // version 1 of the app
const migrations = schemaMigrations({
  migrations: [{ toVersion: 2, steps: [addColumns({ table: 'households', columns: [s('notes')] })] }],
})

// A model per table, as an app would declare it; `createdAt`/`updatedAt` make WatermelonDB keep the
// created_at/updated_at columns itself (the server reads updated_at as the time of the edit).
const modelClasses = Object.keys(schemas[2].tables).map((table) => {
  const cls = class extends Model {
    get createdAt() { return this._getRaw('created_at') }
    get updatedAt() { return this._getRaw('updated_at') }
  }
  cls.table = table
  return cls
})

const clients = {}

function openDatabase(adapter) {
  return new Database({ adapter, modelClasses })
}

function newAdapter(name, version) {
  return new LokiJSAdapter({
    dbName: name, schema: schemas[version], migrations: version >= 2 ? migrations : noMigrationsYet,
    useWebWorker: false, useIncrementalIndexedDB: true, extraLokiOptions: { autosave: false },
  })
}

async function request(client, method, path, body) {
  const response = await fetch(client.url + path, {
    method,
    headers: { Authorization: `Bearer ${client.token}` },
    // a string body goes as text/plain, as in WatermelonDB's documented pushChanges
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`)
  return JSON.parse(text)
}

async function sync(client, sendCreatedAsUpdated) {
  const pushesBefore = client.pushes.length
  const flag = sendCreatedAsUpdated ? '&send_created_as_updated=true' : ''
  await synchronize({
    database: client.db,
    sendCreatedAsUpdated,
    migrationsEnabledAtVersion: 1,
    pullChanges: async ({ lastPulledAt, schemaVersion, migration }) => {
      const query = `last_pulled_at=${lastPulledAt}&schema_version=${schemaVersion}` +
        `&migration=${encodeURIComponent(JSON.stringify(migration))}${flag}`
      const { changes, timestamp } = await request(client, 'GET', `/api/v1/watermelondb/sync?${query}`)
      client.pulls.push({ lastPulledAt, migration, timestamp })
      return { changes, timestamp }
    },
    pushChanges: async ({ changes, lastPulledAt }) => {
      const answer = await request(client, 'POST',
        `/api/v1/watermelondb/sync?last_pulled_at=${lastPulledAt}&client_time=${Date.now()}`, changes)
      client.pushes.push({ changes, answer })
      return { experimentalRejectedIds: answer.experimentalRejectedIds }
    },
  })
  return { pulls: client.pulls.length, lastPull: client.pulls[client.pulls.length - 1],
    lastPush: client.pushes.length > pushesBefore ? client.pushes[client.pushes.length - 1] : null }
}

function assign(record, values) {
  for (const [column, value] of Object.entries(values)) record._setRaw(column, value)
}

const commands = {
  async open({ name, url, token, version = 1 }) {
    const adapter = newAdapter(name, version)
    clients[name] = { url, token, adapter, db: openDatabase(adapter), pulls: [], pushes: [] }
    return { version }
  },
  async migrate({ name }) {
    // Reopen the same (in-memory) data with the app's next schema version: WatermelonDB runs the
    // migration, and its next synchronize() asks the server for what the new column needs.
    const client = clients[name]
    const driver = client.adapter._driver
    await new Promise((resolve, reject) => driver.loki.saveDatabase((error) => (error ? reject(error) : resolve())))
    client.adapter = await client.adapter.testClone({ schema: schemas[2], migrations })
    client.db = openDatabase(client.adapter)
    return { version: 2 }
  },
  async create({ name, table, id, set }) {
    const { db } = clients[name]
    const record = await db.write(() => db.get(table).create((r) => {
      if (id) r._raw.id = id
      assign(r, set || {})
    }))
    return { id: record.id }
  },
  async update({ name, table, id, set }) {
    const { db } = clients[name]
    const record = await db.get(table).find(id)
    await db.write(() => record.update((r) => assign(r, set)))
    return { id }
  },
  async remove({ name, table, id }) {
    const { db } = clients[name]
    const record = await db.get(table).find(id)
    await db.write(() => record.markAsDeleted())
    return { id }
  },
  async sync({ name, sendCreatedAsUpdated = true }) {
    return sync(clients[name], sendCreatedAsUpdated)
  },
  async all({ name, table }) {
    const records = await clients[name].db.get(table).query().fetch()
    return records.map((r) => ({ ...r._raw }))
  },
  async errors() {
    return loggedErrors
  },
}

const lines = readline.createInterface({ input: process.stdin })
let queue = Promise.resolve()
lines.on('line', (line) => {
  queue = queue.then(async () => {
    let message
    try {
      message = JSON.parse(line)
      const result = await commands[message.cmd](message)
      process.stdout.write(JSON.stringify({ ok: true, result }) + '\n')
    } catch (error) {
      process.stdout.write(JSON.stringify({ ok: false, error: String((error && error.stack) || error) }) + '\n')
    }
  })
})
lines.on('close', () => queue.then(() => process.exit(0)))
