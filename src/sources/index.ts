// Public surface of the sources stage (what daemon/pipeline.ts imports).
export { SyslogSource, type SyslogListenerConfig, type SyslogTlsConfig, type SyslogStats } from './syslog.js';
export { JournaldSource, lastCursor, DEFAULT_JOURNAL_FIELDS, type JournaldSourceConfig, type JournaldStats } from './journald.js';
export { journalFilter, type JournalFilter } from './journal-filter.js';
export type { PeerCounters } from './peers.js';
export { FileSource, type FileSourceOptions, type FileSourceStats } from './file.js';
