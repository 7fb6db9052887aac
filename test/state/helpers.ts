// Builders for matches as the rules stage would emit them.
import { defaultPolicy } from '../../src/daemon/config.js';
import { parseIp } from '../../src/parse/ip.js';
import type { Policy } from '../../src/state/policy.js';
import type { AttemptInfo, Ip, Match, RuleClass, Service } from '../../src/types.js';

export const T0 = Date.UTC(2026, 10, 4, 0, 0, 0);

export function ip(s: string): Ip {
  const v = parseIp(s);
  if (!v) throw new Error(`bad test address ${s}`);
  return v;
}

export interface MatchOpts {
  readonly attempt?: AttemptInfo;
  readonly cls?: RuleClass;
  readonly service?: Service;
  readonly user?: string;
  readonly line?: number;
  readonly source?: string;
  readonly ruleId?: string;
}

/** Numbers each built line, so that two matches are two distinct log lines (not copies of one). */
let lineSeq = 0;

/** A match of `addr` at `t` ms, from a log line of its own. */
export function match(addr: string, t: number, o: MatchOpts = {}): Match {
  return {
    ip: ip(addr),
    ruleId: o.ruleId ?? 'test-auth',
    service: o.service ?? 'imap',
    class: o.cls ?? 'auth',
    ...(o.user !== undefined ? { user: o.user } : {}),
    attempt: o.attempt ?? {},
    event: {
      time: t,
      host: 'mx1',
      program: 'test',
      message: `test line ${++lineSeq}`,
      origin: { kind: 'file', name: o.source ?? 'test.log', ...(o.line !== undefined ? { line: o.line } : {}) },
    },
  };
}

export const s = (n: number): number => n * 1000;

/** The policy the embedded default config runs ("auth": 5 in 10 min → 1 h, escalating ×2 up to 7 d); durations in ms. */
export const DEFAULT_POLICY: Policy = defaultPolicy();
