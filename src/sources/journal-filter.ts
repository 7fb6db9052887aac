// Turns the rule pack's program list (and optional units) into a journal filter.
// Exact names become journal matches (SYSLOG_IDENTIFIER=…, OR'ed, plus `+ _SYSTEMD_UNIT=…`), so
// non-mail entries are never even decoded. The journal has no glob match, so when any program is
// a glob (`postfix*/smtpd`) the journal-level match is dropped and every program (exact or glob)
// is tested in-process on SYSLOG_IDENTIFIER — in C for the native reader, in JS for journalctl.
// A glob's `*` does not cross `/` (fnmatch FNM_PATHNAME), so `postfix*/smtpd` matches
// `postfix-out/smtpd` but not `postfix/x/smtpd`.
import type { JournalFields } from '../types.js';

export interface JournalFilter {
  /** journalctl/sd_journal_add_match arguments; "+" is a disjunction. Empty: no journal-level match. */
  readonly matches: readonly string[];
  /** Patterns for the in-process SYSLOG_IDENTIFIER test (empty when the matches do all the work). */
  readonly globs: readonly string[];
  /** Units for the in-process test (only with globs). */
  readonly units: readonly string[];
  /** The in-process test (always true when `globs` is empty). */
  readonly accept: (f: JournalFields) => boolean;
  /** Every program as an fnmatch pattern (exact names escaped), for a reader that filters
   *  in-process only (the native reader while following, see journald.ts). */
  readonly patterns: readonly string[];
}

const globToRegExp = (g: string): RegExp =>
  new RegExp(`^${g.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*')}$`);

/** fnmatch pattern for a program: `*` stays a wildcard, other fnmatch specials are escaped. */
const toPattern = (p: string): string => p.replace(/[?[\]\\]/g, '\\$&');

export function journalFilter(programs: readonly string[] = [], units: readonly string[] = []): JournalFilter {
  const hasGlob = programs.some((p) => p.includes('*'));
  const patterns = programs.map(toPattern);
  if (!hasGlob) {
    const matches: string[] = programs.map((p) => `SYSLOG_IDENTIFIER=${p}`);
    if (units.length > 0) {
      if (matches.length > 0) matches.push('+');
      matches.push(...units.map((u) => `_SYSTEMD_UNIT=${u}`));
    }
    return { matches, globs: [], units: [], accept: () => true, patterns };
  }
  const res = programs.map(globToRegExp);
  const unitSet = new Set(units);
  return {
    matches: [],
    globs: patterns,
    units: [...units],
    patterns,
    accept: (f) => {
      const id = f.SYSLOG_IDENTIFIER;
      if (id !== undefined && res.some((r) => r.test(id))) return true;
      const u = f._SYSTEMD_UNIT;
      return u !== undefined && unitSet.has(u);
    },
  };
}
