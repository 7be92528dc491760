export { exitOnCommitFailure, Journal, type Durable, type JournalOptions, type JournalRecord, type JournalSync, type StoredRecord } from './journal.js';
export { decodeState, encodeState } from './state-codec.js';
export { openDataDir, type DataDirFile } from './data-dir.js';
