// Static checks on a rule's pattern, before any line reaches it. These are the first safety net;
// V8's linear-time fallback for excessive backtracking is the second.

export interface LintFault {
  readonly code: 'MJ_RULE_UNANCHORED' | 'MJ_RULE_NO_IP' | 'MJ_RULE_REDOS' | 'MJ_RULE_CATCHALL';
  readonly message: string;
}

interface Quant { readonly max: number; readonly len: number }

/** The quantifier at `i` (`*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`, each maybe lazy), or undefined. */
function quantifierAt(p: string, i: number): Quant | undefined {
  const c = p[i];
  let q: Quant | undefined;
  if (c === '*' || c === '+') q = { max: Infinity, len: 1 };
  else if (c === '?') q = { max: 1, len: 1 };
  else if (c === '{') {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(p.slice(i));
    if (m) q = { max: m[2] === undefined ? Number(m[1]) : m[3] === '' ? Infinity : Number(m[3]), len: m[0].length };
  }
  if (q && p[i + q.len] === '?') q = { max: q.max, len: q.len + 1 };
  return q;
}

/** Index just past the character class opening at `i`. */
function skipClass(p: string, i: number): number {
  let j = i + 1;
  if (p[j] === '^') j++;
  if (p[j] === ']') j++;
  for (; j < p.length; j++) {
    if (p[j] === '\\') j++;
    else if (p[j] === ']') return j + 1;
  }
  return j;
}

/**
 * Finds a quantified group whose body already holds an unbounded quantifier, e.g. `(\w+\s?)+` or
 * `(?:a*){3}`: the shapes that make a backtracking engine take exponential or high-polynomial time.
 */
export function nestedQuantifier(p: string): string | undefined {
  const stack: { start: number; unbounded: boolean }[] = [];
  let lastAtomUnbounded = false;
  for (let i = 0; i < p.length; ) {
    const c = p[i]!;
    let atomEnd: number;
    let atomUnbounded = false;
    let groupStart = -1;
    if (c === '\\') atomEnd = i + 2;
    else if (c === '[') atomEnd = skipClass(p, i);
    else if (c === '(') {
      stack.push({ start: i, unbounded: false });
      i++;
      continue;
    } else if (c === ')') {
      const g = stack.pop();
      atomEnd = i + 1;
      if (g) { atomUnbounded = g.unbounded; groupStart = g.start; }
    } else atomEnd = i + 1;
    const q = quantifierAt(p, atomEnd);
    if (q) {
      if (atomUnbounded && q.max > 1) return p.slice(groupStart, atomEnd + q.len);
      if (q.max === Infinity || atomUnbounded) lastAtomUnbounded = true;
      i = atomEnd + q.len;
    } else {
      lastAtomUnbounded = atomUnbounded;
      i = atomEnd;
    }
    const top = stack[stack.length - 1];
    if (top && lastAtomUnbounded) top.unbounded = true;
    lastAtomUnbounded = false;
  }
  return undefined;
}

/** An unescaped `.*` / `.+` (outside a class) before offset `end`. */
function catchAllBefore(p: string, end: number): boolean {
  for (let i = 0; i < end; i++) {
    const c = p[i];
    if (c === '\\') { i++; continue; }
    if (c === '[') { i = skipClass(p, i) - 1; continue; }
    if (c === '.' && (p[i + 1] === '*' || p[i + 1] === '+')) return true;
  }
  return false;
}

function endsAnchored(p: string): boolean {
  return p.endsWith('$') && !p.endsWith('\\$');
}

export function lintPattern(pattern: string): LintFault[] {
  const faults: LintFault[] = [];
  if (!pattern.startsWith('^')) {
    faults.push({ code: 'MJ_RULE_UNANCHORED', message: 'pattern must start with ^ (an unanchored pattern can be steered by attacker text)' });
  }
  const ipAt = pattern.search(/\(\?<ip\d*>/);
  if (ipAt < 0) faults.push({ code: 'MJ_RULE_NO_IP', message: 'pattern has no named group (?<ip>...)' });
  const nested = nestedQuantifier(pattern);
  if (nested) faults.push({ code: 'MJ_RULE_REDOS', message: `nested quantifier ${JSON.stringify(nested)} risks catastrophic backtracking` });
  if (ipAt >= 0 && catchAllBefore(pattern, ipAt) && !endsAnchored(pattern)) {
    faults.push({ code: 'MJ_RULE_CATCHALL', message: '.* or .+ before the address without a $ at the end: attacker text could move the capture' });
  }
  return faults;
}
