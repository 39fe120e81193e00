// Writes python/nfhm/contract.json from src/bridge/methods.ts and tables.ts
// (`npm run contract`); test/contract.test.ts fails while it is stale.
import { writeFileSync } from 'node:fs'
import { contractFile, contractText } from '../src/bridge/contract.js'

writeFileSync(contractFile, contractText())
console.log(`wrote ${contractFile}`)
