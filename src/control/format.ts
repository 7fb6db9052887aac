// Human-readable renderings of control results for the terminal (the --json forms print the
// protocol objects as they are).
import { formatDuration } from '../lib/duration.js';
import type { BanEntry, StatusResult } from './protocol.js';

function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, c.length); });
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

export function formatStatus(s: StatusResult, now = Date.now()): string {
  const lines = [
    `mailjail ${s.version}, pid ${s.pid}, up ${formatDuration(now - s.startedAt)}, firewall ${s.firewall}`,
    `config: ${s.configFiles.join(', ')}`,
    '',
    table([['SOURCE', 'TYPE', 'STATE', 'LINES'], ...s.sources.map((x) => [x.name, x.type, x.lastError ? `${x.state} (${x.lastError})` : x.state, String(x.lines)])]),
    '',
    table([['POLICY', 'MAXRETRY', 'FINDTIME', 'BANTIME', 'BANS'], ...s.policies.map((p) => [p.name, String(p.maxretry), formatDuration(p.findtime), formatDuration(p.bantime), String(p.bansActive)])]),
    '',
    table([['COUNTER', 'VALUE'], ...Object.entries(s.counters).map(([k, v]) => [k, String(v)])]),
  ];
  return `${lines.join('\n')}\n`;
}

export function formatBans(bans: readonly BanEntry[], now = Date.now()): string {
  if (bans.length === 0) return 'no active bans\n';
  const rows = bans.map((b) => [
    b.target,
    b.policy,
    b.until === 0 ? 'never' : `${new Date(b.until).toISOString().replace(/\.\d+Z$/, 'Z')} (${formatDuration(b.until - now)})`,
    String(b.level),
    b.ruleId,
    `${b.evidence.count}×${b.evidence.lastLine !== undefined ? ` last: ${b.evidence.lastLine.slice(0, 100)}` : ''}`,
  ]);
  return `${table([['ADDRESS', 'POLICY', 'UNTIL', 'LEVEL', 'RULE', 'EVIDENCE'], ...rows])}\n${bans.length} active ban${bans.length === 1 ? '' : 's'}\n`;
}
