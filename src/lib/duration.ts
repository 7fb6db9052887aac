// Durations as admins write them in config and on the command line: "90s", "10m", "1h", "7d",
// "1h30m", or a bare number of seconds. One parser so that config, `ban --for` and docs agree.

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const PART = /(\d+)(ms|s|m|h|d|w)/y;

/** Parses a duration into milliseconds; undefined when the text is not a duration. */
export function parseDuration(input: string | number): number | undefined {
  if (typeof input === 'number') {
    // A bare number in YAML means seconds (fail2ban's habit for findtime/bantime).
    return Number.isSafeInteger(input) && input >= 0 ? input * 1000 : undefined;
  }
  const s = input.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  if (s === '' || s.length > 32) return undefined;
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < s.length) {
    const at = PART.lastIndex;
    const m = PART.exec(s);
    if (!m || m.index !== at) return undefined;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
  }
  return Number.isSafeInteger(total) ? total : undefined;
}

/** Short human form of a duration in ms, e.g. 5400000 → "1h30m". */
export function formatDuration(ms: number): string {
  if (ms <= 0) return '0s';
  const out: string[] = [];
  let rest = Math.round(ms);
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (rest >= size) {
      out.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0 && out.length === 0) out.push(`${rest}ms`);
  return out.join('');
}
