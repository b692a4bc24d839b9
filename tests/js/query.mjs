// node query.mjs URL SQL: rows as JSONEachRow, a ping, and the code of a query the sandbox refuses.
import { createClient } from '@clickhouse/client'

const [url, sql] = process.argv.slice(2)
const client = createClient({ url })
const rows = await (await client.query({ query: sql, format: 'JSONEachRow' })).json()
const ping = (await client.ping()).success
let refused = null
try {
  const rs = await client.query({ query: "SELECT file('/etc/passwd')", format: 'JSONEachRow' })
  refused = { unexpected: await rs.text() }
} catch (err) {
  refused = Number(err.code)
}
await client.close()
console.log(JSON.stringify({ rows, ping, refused }))
