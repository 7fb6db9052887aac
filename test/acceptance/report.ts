// Ground truth vs. what mailjail counted, per attacker, as the table issue 7 asks for; plus the
// fixture sanitizer for the captured journal.
import { hostname } from 'node:os';
import type { Actor } from './scenario.js';
import { keyFor } from './analyse.js';

/** Every key an actor's addresses fall under. */
export function keysOf(a: Actor): string[] {
  return [...new Set(a.addrs.map(keyFor))];
}

export function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd();
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

const KEEP = new Set(['MESSAGE', 'PRIORITY', 'SYSLOG_FACILITY', 'SYSLOG_IDENTIFIER', 'SYSLOG_PID', 'SYSLOG_TIMESTAMP', '_PID', '_UID', '_GID', '_COMM', '_EXE', '_HOSTNAME', '_TRANSPORT', '__REALTIME_TIMESTAMP', '__MONOTONIC_TIMESTAMP']);
const MAIL = /^(postfix|dovecot)/;

/**
 * Sanitized copy of the captured journal (JSON lines): only the mail daemons' entries, only
 * fields that say nothing about this machine, the lab's temp dir and host name replaced, and a
 * synthetic cursor so a replay can still resume.
 */
export function sanitizeJournal(json: string, labDir: string): string {
  const out: string[] = [];
  let i = 0;
  for (const l of json.split('\n')) {
    if (!l.trim()) continue;
    const o = JSON.parse(l) as Record<string, unknown>;
    if (!MAIL.test(String(o['SYSLOG_IDENTIFIER'] ?? ''))) continue;
    const k: Record<string, unknown> = { __CURSOR: `s=00000000000000000000000000000000;i=${(++i).toString(16)}` };
    for (const [f, v] of Object.entries(o)) if (KEEP.has(f)) k[f] = typeof v === 'string' ? scrub(v, labDir) : v;
    out.push(JSON.stringify(k));
  }
  return `${out.join('\n')}\n`;
}

/** Same for the syslog form (`journalctl -o short`). */
export function sanitizeSyslog(text: string, labDir: string): string {
  return `${text.split('\n').filter((l) => / (postfix[^ ]*|dovecot)\[\d+\]: /.test(l)).map((l) => scrub(l, labDir)).join('\n')}\n`;
}

function scrub(s: string, labDir: string): string {
  const host = hostname();
  let r = s.split(labDir).join('/srv/mail-lab');
  if (host) r = r.replace(new RegExp(`^([A-Z][a-z]{2} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d) ${host.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} `), '$1 mx1 ');
  if (r === host) r = 'mx1';
  return r;
}
