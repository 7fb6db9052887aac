// The one schema layer for the YAML files mailjail reads (mailjail.yaml and its drop-ins, rule
// files). Two steps, so that drop-ins can merge in between:
//  - readYaml checks one file's node tree (types, ranges, unknown keys with a did-you-mean) and
//    returns its plain value plus where each key was written (file:line:col);
//  - complete fills the schema's defaults into a (merged) value, reports missing required keys at
//    the nearest written place, and returns it typed as the schema says (Infer<F>).
// Problems carry a kind; each caller maps kinds to its own MJ_* codes.
import { dirname, resolve } from 'node:path';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document, Node as YNode } from 'yaml';
import { parseDuration } from './duration.js';

export interface Loc { readonly file: string; readonly line: number; readonly col: number }
export type ProblemKind = 'yaml' | 'unknown-key' | 'type' | 'value' | 'missing';
export interface Problem extends Loc {
  readonly kind: ProblemKind;
  /** Dotted key path, e.g. "policies.auth.maxretry", "rules[2].id" ("" for the whole file). */
  readonly key: string;
  readonly message: string;
  /** A field's own code (e.g. MJ_RULE_NO_SAMPLES), overriding the caller's code for the kind. */
  readonly code?: string;
}

type Spec =
  | { readonly kind: 'str'; readonly enum?: readonly unknown[]; readonly check?: (s: string) => string | undefined; readonly path?: boolean }
  | { readonly kind: 'int' | 'num'; readonly min?: number; readonly max?: number }
  | { readonly kind: 'bool' }
  | { readonly kind: 'duration'; readonly min?: number }
  | { readonly kind: 'list'; readonly of: Field; readonly nonEmpty?: boolean }
  | { readonly kind: 'obj'; readonly fields: Readonly<Record<string, Field>> }
  /** User-chosen names → entries (sources, policies); entries with `enabled: false` are left out. */
  | { readonly kind: 'named'; readonly of: Field; readonly checkName: (s: string) => string | undefined }
  /** Free keys → values (a rule's serviceByProgram). */
  | { readonly kind: 'map'; readonly of: Field; readonly checkKey?: (s: string) => string | undefined; readonly expect: string }
  /** An object whose allowed keys depend on its `tag` field (a source's `type`). */
  | { readonly kind: 'union'; readonly tag: string; readonly noun: string; readonly variants: Readonly<Record<string, Readonly<Record<string, Field>>>> }
  /** Anything else: `convert` gets the plain value and returns the checked value or an error text. */
  | { readonly kind: 'custom'; readonly expect: string; readonly convert: (v: unknown) => { ok: unknown } | { error: string } };

interface Missing { readonly message: string; readonly at: 'self' | 'parent'; readonly code?: string }

/** A field whose checked value is a T; P: always present after `complete` (a default, or required). */
export type Field<T = unknown, P extends boolean = boolean> = Spec & {
  readonly default?: unknown;
  readonly missing?: Missing;
  /** Problems about this field itself (missing, empty) carry this code. */
  readonly code?: string;
  readonly __t?: T;
  readonly __p?: P;
};

export type Infer<F> = F extends Field<infer T, boolean> ? T : never;
type Present<F> = F extends Field<unknown, true> ? true : false;
export type ObjOf<R extends Record<string, Field>> =
  { readonly [K in keyof R as Present<R[K]> extends true ? K : never]: Infer<R[K]> } &
  { readonly [K in keyof R as Present<R[K]> extends true ? never : K]?: Infer<R[K]> };
type Flat<T> = { [K in keyof T]: T[K] } & {};

const field = <T>(spec: Spec): Field<T, false> => spec as Field<T, false>;

export const s = {
  str: (check?: (s: string) => string | undefined): Field<string, false> => field(check ? { kind: 'str', check } : { kind: 'str' }),
  /** A path: relative ones are resolved against the directory of the file that wrote them. */
  path: (check?: (s: string) => string | undefined): Field<string, false> => field({ kind: 'str', path: true, ...(check ? { check } : {}) }),
  oneOf: <E extends string>(values: readonly E[]): Field<E, false> => field({ kind: 'str', enum: values }),
  int: (min?: number, max?: number): Field<number, false> => field({ kind: 'int', ...(min !== undefined ? { min } : {}), ...(max !== undefined ? { max } : {}) }),
  num: (min?: number, max?: number): Field<number, false> => field({ kind: 'num', ...(min !== undefined ? { min } : {}), ...(max !== undefined ? { max } : {}) }),
  bool: (): Field<boolean, false> => field({ kind: 'bool' }),
  /** Milliseconds, written as "90s", "10m", "1h"... (a bare number is seconds). */
  duration: (min?: number): Field<number, false> => field(min !== undefined ? { kind: 'duration', min } : { kind: 'duration' }),
  list: <F extends Field>(of: F, nonEmpty = false): Field<readonly Infer<F>[], false> => field({ kind: 'list', of, nonEmpty }),
  obj: <R extends Record<string, Field>>(fields: R): Field<Flat<ObjOf<R>>, false> => field({ kind: 'obj', fields }),
  named: <F extends Field>(of: F, checkName: (s: string) => string | undefined): Field<Readonly<Record<string, Infer<F>>>, false> =>
    field({ kind: 'named', of, checkName }),
  map: <F extends Field>(of: F, expect: string, checkKey?: (s: string) => string | undefined): Field<Readonly<Record<string, Infer<F>>>, false> =>
    field({ kind: 'map', of, expect, ...(checkKey ? { checkKey } : {}) }),
  union: <Tag extends string, V extends Record<string, Record<string, Field>>>(tag: Tag, noun: string, variants: V):
    Field<{ [K in keyof V]: Flat<ObjOf<V[K]> & { readonly [T in Tag]: K }> }[keyof V], false> => field({ kind: 'union', tag, noun, variants }),
  custom: <T>(expect: string, convert: (v: unknown) => { ok: T } | { error: string }): Field<T, false> => field({ kind: 'custom', expect, convert }),
};

/** The field with a default: `complete` fills it in when the key is not written. */
export function withDefault<T>(f: Field<T>, value: T extends readonly unknown[] ? T : T extends object ? object : T): Field<T, true> {
  return { ...f, default: value } as Field<T, true>;
}

/** The field must be written; `message` is reported at the parent's key unless `at` says 'self'. */
export function required<T>(f: Field<T>, message?: string, at: 'self' | 'parent' = 'parent', code?: string): Field<T, true> {
  return { ...f, missing: { message: message ?? '', at, ...(code !== undefined ? { code } : {}) } } as Field<T, true>;
}

/** The field's own problems (missing, empty list) carry `code`. */
export function withCode<T, P extends boolean>(f: Field<T, P>, code: string): Field<T, P> {
  return { ...f, code };
}

// ---------------------------------------------------------------------------------------------
// Messages.

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

function unknownKey(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const dist = editDistance(key, k);
    if (dist < bestD) { bestD = dist; best = k; }
  }
  const hint = best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean "${best}"?)` : '';
  return `unknown key${hint}; allowed here: ${known.join(', ')}`;
}

function describe(f: Field): string {
  switch (f.kind) {
    case 'str': return f.enum ? `one of ${f.enum.map((e) => JSON.stringify(e)).join(', ')}` : 'a string';
    case 'int': return `an integer${f.min !== undefined ? ` from ${f.min}` : ''}${f.max !== undefined ? ` to ${f.max}` : ''}`;
    case 'num': return `a number${f.min !== undefined ? ` from ${f.min}` : ''}${f.max !== undefined ? ` to ${f.max}` : ''}`;
    case 'bool': return 'true or false';
    case 'duration': return 'a duration such as "90s", "10m", "1h", "7d" (a bare number is seconds)';
    case 'list': return 'a list';
    case 'obj': case 'union': return 'a mapping (key: value)';
    case 'named': return 'a mapping of names to entries';
    case 'map': case 'custom': return f.expect;
  }
}

export function shown(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (typeof v === 'string') {
    // A URL's user:password never goes into an error message (it ends up in logs).
    const safe = v.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, '$1***@');
    return `the string ${JSON.stringify(safe.length > 40 ? `${safe.slice(0, 40)}…` : safe)}`;
  }
  if (typeof v === 'object') return Array.isArray(v) ? 'a list' : 'a mapping';
  return `${typeof v} ${String(v)}`;
}

// ---------------------------------------------------------------------------------------------
// Step 1: one file's node tree.

export interface FileRead {
  readonly value: Record<string, unknown>;
  /** Key path → where it was written (list items: where the item starts). */
  readonly locs: Map<string, Loc>;
  readonly problems: Problem[];
  /** False when the whole document was refused (a YAML error, or a fault in a top-level key). */
  readonly ok: boolean;
}

const INVALID = Symbol('invalid');

/** Parses `text` and checks it against `root`; an empty document reads as {}. */
export function readYaml(text: string, file: string, root: Field): FileRead {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, strict: true });
  const locs = new Map<string, Loc>();
  const problems: Problem[] = [];
  const at = (offset: number | undefined): Loc => {
    const p = lc.linePos(offset ?? 0);
    return { file, line: p.line, col: p.col };
  };
  for (const e of doc.errors) problems.push({ kind: 'yaml', ...at(e.pos[0]), key: '', message: e.message.split('\n')[0]! });
  if (problems.length > 0) return { value: {}, locs, problems, ok: false };
  const top = doc.contents;
  if (top === null || (isScalar(top) && (top.value === null || top.value === undefined))) return { value: {}, locs, problems, ok: true };
  const value = walk({ doc, at, locs, problems }, top, root, '');
  return value === INVALID ? { value: {}, locs, problems, ok: false } : { value: value as Record<string, unknown>, locs, problems, ok: true };
}

interface Walk {
  readonly doc: Document;
  readonly at: (offset: number | undefined) => Loc;
  readonly locs: Map<string, Loc>;
  readonly problems: Problem[];
}

// An invalid value makes its mapping invalid; lists and named maps drop the invalid entry and go on,
// so that one bad rule does not hide the faults of the next.
function walk(w: Walk, raw: unknown, f: Field, path: string): unknown {
  let node = raw as YNode | null;
  if (node && isAlias(node)) node = (node.resolve(w.doc) as YNode | undefined) ?? null;
  const here = w.at(node?.range?.[0]);
  const fail = (kind: ProblemKind, message: string, loc: Loc = here, key = path, code = f.code): typeof INVALID => {
    w.problems.push({ kind, ...loc, key, message, ...(code !== undefined ? { code } : {}) });
    return INVALID;
  };
  if (node === null || (isScalar(node) && node.value === null)) return fail('type', `has no value; expected ${describe(f)}`);

  /** Each pair of a mapping node: key name, key location, value node. */
  const pairs = (each: (name: string, kLoc: Loc, value: unknown) => boolean, keyError: string, keyKind: ProblemKind): boolean => {
    let ok = true;
    for (const pair of (node as { items: { key: unknown; value: unknown }[] }).items) {
      const k = pair.key as YNode | null;
      const name = k && isScalar(k) ? k.value : undefined;
      const kLoc = w.at(k?.range?.[0]);
      if (typeof name !== 'string') {
        fail(keyKind, keyError, kLoc, keyKind === 'type' ? path : `${path}.${String(name)}`, undefined);
        ok = false;
        continue;
      }
      if (!each(name, kLoc, pair.value)) ok = false;
    }
    return ok;
  };
  const mapFields = (fields: Readonly<Record<string, Field>>): unknown => {
    if (!isMap(node)) return fail('type', `expected ${describe(f)}, got ${shown(node!.toJSON())}`);
    const out: Record<string, unknown> = {};
    const ok = pairs((name, kLoc, value) => {
      const sub = path === '' ? name : `${path}.${name}`;
      const sf = fields[name];
      if (!sf) return fail('unknown-key', unknownKey(name, Object.keys(fields)), kLoc, sub, undefined) !== INVALID;
      w.locs.set(sub, kLoc);
      const v = walk(w, value, sf, sub);
      if (v === INVALID) return false;
      out[name] = v;
      return true;
    }, 'keys must be plain strings', 'type');
    return ok ? out : INVALID;
  };

  switch (f.kind) {
    case 'obj':
      return mapFields(f.fields);
    case 'named':
    case 'map': {
      if (!isMap(node)) return fail('type', `expected ${describe(f)}, got ${shown(node.toJSON())}`);
      const out: Record<string, unknown> = {};
      const check = f.kind === 'named' ? f.checkName : f.checkKey;
      const ok = pairs((name, kLoc, value) => {
        const sub = `${path}.${name}`;
        const bad = check?.(name);
        if (bad !== undefined) return fail('value', bad, kLoc, sub, undefined) !== INVALID;
        w.locs.set(sub, kLoc);
        const v = walk(w, value, f.of, sub);
        if (v !== INVALID) out[name] = v;
        return true;
      }, 'names must be plain strings', 'value');
      return ok || f.kind === 'named' ? out : INVALID;
    }
    case 'union': {
      if (!isMap(node)) return fail('type', `expected a mapping, got ${shown(node.toJSON())}`);
      const tagNode = node.get(f.tag, true) as YNode | undefined;
      const tag = tagNode && isScalar(tagNode) ? tagNode.value : undefined;
      // A drop-in may amend an entry without restating its tag: check against every variant's
      // keys now; `complete` checks the merged entry against its own variant.
      if (tag === undefined) return mapFields(Object.assign({}, ...Object.values(f.variants)) as Record<string, Field>);
      const variant = typeof tag === 'string' ? f.variants[tag] : undefined;
      if (!variant) {
        return fail('value', `${shown(tag)} is not a known ${f.tag}; expected one of ${Object.keys(f.variants).map((x) => `"${x}"`).join(', ')}`,
          w.at(tagNode?.range?.[0]), `${path}.${f.tag}`, undefined);
      }
      return mapFields(variant);
    }
    case 'list': {
      if (!isSeq(node)) return fail('type', `expected a list, got ${shown(node.toJSON())}`);
      if (f.nonEmpty && node.items.length === 0) return fail('value', 'must not be empty');
      const out: unknown[] = [];
      node.items.forEach((item, i) => {
        const sub = `${path}[${i}]`;
        w.locs.set(sub, w.at((item as YNode | null)?.range?.[0]));
        // A hole keeps the later items at their written index (their key paths and locations).
        const v = walk(w, item, f.of, sub);
        out.push(v === INVALID ? undefined : v);
      });
      return out;
    }
    case 'custom': {
      const r = f.convert(node.toJS(w.doc));
      return 'ok' in r ? r.ok : fail('value', r.error);
    }
    default:
      break;
  }
  if (!isScalar(node)) return fail('type', `expected ${describe(f)}, got ${shown(node.toJSON())}`);
  const v = node.value;
  switch (f.kind) {
    case 'str': {
      if (typeof v !== 'string') return fail('type', `expected ${describe(f)}, got ${shown(v)}`);
      if (f.enum && !f.enum.includes(v)) return fail('value', `${shown(v)} is not allowed; expected ${describe(f)}`);
      const bad = f.check?.(v);
      return bad === undefined ? v : fail('value', `${shown(v)}: ${bad}`);
    }
    case 'int':
    case 'num': {
      if (typeof v !== 'number' || !Number.isFinite(v) || (f.kind === 'int' && !Number.isInteger(v))) {
        return fail('type', `expected ${describe(f)}, got ${shown(v)}`);
      }
      if ((f.min !== undefined && v < f.min) || (f.max !== undefined && v > f.max)) return fail('value', `${v} is out of range; expected ${describe(f)}`);
      return v;
    }
    case 'bool':
      return typeof v === 'boolean' ? v : fail('type', `expected true or false, got ${shown(v)}`);
    case 'duration': {
      const ms = typeof v === 'string' || typeof v === 'number' ? parseDuration(v) : undefined;
      if (ms === undefined) return fail(typeof v === 'string' || typeof v === 'number' ? 'value' : 'type', `expected ${describe(f)}, got ${shown(v)}`);
      if (f.min !== undefined && ms < f.min) return fail('value', `${String(v)} is too short (minimum ${f.min / 1000}s)`);
      return ms;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Step 2: defaults, required keys, the typed value.

const isPlain = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Where `path` (or the nearest written key above it) was written; `fallback` when none was. */
export function locator(locs: ReadonlyMap<string, Loc>, fallback: Loc): (path: string) => Loc {
  return (path) => {
    for (let p = path; ; ) {
      const l = locs.get(p);
      if (l) return l;
      const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
      if (cut <= 0) return fallback;
      p = p.slice(0, cut);
    }
  };
}

export interface Completed<T> {
  readonly value: T;
  /** False when something required is missing outside a list or named map (the value is partial). */
  readonly ok: boolean;
  readonly problems: Problem[];
  /** The key path a list item of the result was written at (e.g. "rules[3]"), for its location. */
  readonly pathOf: (item: object) => string;
}

/**
 * Fills defaults into `value` (already read by readYaml, possibly merged from several files) and
 * reports what is missing. An entry of a list or named map that misses a required key is left out
 * of the result; elsewhere the value is returned as far as it goes (`ok` false), so that the caller
 * can still run its cross-field checks and report every problem at once.
 */
export function complete<F extends Field>(root: F, value: unknown, locOf: (path: string) => Loc): Completed<Infer<F>> {
  const problems: Problem[] = [];
  const seen = new Set<string>();
  const problem = (p: Problem): void => {
    const id = `${p.key}\n${p.message}`;
    if (!seen.has(id)) { seen.add(id); problems.push(p); }
  };
  // Values (mappings) that miss something, themselves or below.
  const broken = new WeakSet<object>();
  const pathOf = new WeakMap<object, string>();
  const isBroken = (v: unknown): boolean => typeof v === 'object' && v !== null && broken.has(v);
  const fill = (f: Field, v: unknown, path: string): unknown => {
    const sub = (k: string): string => (path === '' ? k : `${path}.${k}`);
    const fields = (fs: Readonly<Record<string, Field>>, o: Record<string, unknown>): Record<string, unknown> => {
      const out: Record<string, unknown> = {};
      let ok = true;
      for (const [k, sf] of Object.entries(fs)) {
        const x = o[k];
        if (x !== undefined) {
          out[k] = fill(sf, x, sub(k));
          if (isBroken(out[k])) ok = false;
        } else if (sf.default !== undefined) {
          out[k] = fill(sf, sf.default, sub(k));
        } else if (sf.missing) {
          const key = sf.missing.at === 'self' ? sub(k) : path;
          const code = sf.missing.code ?? sf.code;
          problem({ kind: 'missing', ...locOf(key), key, message: sf.missing.message || `missing "${k}"`, ...(code !== undefined ? { code } : {}) });
          ok = false;
        }
      }
      if (!ok) broken.add(out);
      return out;
    };
    switch (f.kind) {
      case 'obj':
        return fields(f.fields, isPlain(v) ? v : {});
      case 'union': {
        const o = isPlain(v) ? v : {};
        const tag = o[f.tag];
        const variant = typeof tag === 'string' ? f.variants[tag] : undefined;
        if (!variant) {
          problem({ kind: 'missing', ...locOf(path), key: path, message: `missing "${f.tag}" (one of ${Object.keys(f.variants).map((x) => `"${x}"`).join(', ')})` });
          broken.add(o);
          return o;
        }
        const out = fields(variant, o);
        for (const k of Object.keys(o).filter((x) => !(x in variant))) {
          problem({ kind: 'unknown-key', ...locOf(sub(k)), key: sub(k), message: `not allowed for a ${f.noun} of ${f.tag} "${String(tag)}"` });
          broken.add(out);
        }
        return out;
      }
      case 'named':
      case 'map': {
        const out: Record<string, unknown> = {};
        for (const [k, x] of Object.entries(isPlain(v) ? v : {})) {
          if (f.kind === 'named' && isPlain(x) && x['enabled'] === false) continue;
          const r = fill(f.of, x, `${path}.${k}`);
          if (!isBroken(r)) out[k] = r;
        }
        return out;
      }
      case 'list': {
        const out: unknown[] = [];
        (Array.isArray(v) ? v : []).forEach((x, i) => {
          if (x === undefined) return; // an item readYaml refused
          const r = fill(f.of, x, `${path}[${i}]`);
          if (typeof r === 'object' && r !== null) pathOf.set(r, `${path}[${i}]`);
          if (!isBroken(r)) out.push(r);
        });
        return out;
      }
      case 'str': {
        // Relative paths are relative to the file that wrote them, not to the daemon's working directory.
        if (!f.path || typeof v !== 'string' || v.startsWith('/')) return v;
        const file = locOf(path).file;
        return file.startsWith('<') ? resolve(v) : resolve(dirname(file), v);
      }
      default:
        return v;
    }
  };
  const out = fill(root, value, '');
  return { value: out as Infer<F>, ok: !isBroken(out), problems, pathOf: (o) => pathOf.get(o) ?? '' };
}
