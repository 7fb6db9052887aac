// The sources the daemon builds from its config (daemon/factories.ts). `mailjail check` reads
// files with sources/file.ts directly.
export { SyslogSource } from './syslog.js';
export { JournaldSource } from './journald.js';
