import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseLine } from '../../src/parse/index.js';
import { RuleLoadError } from '../../src/rules/load.js';
import { BUNDLED_RULES_DIR, loadRulePack, verifyRuleDir } from '../../src/rules/pack.js';

const FIX = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));

test('each bad rule fixture is refused with its code at its file:line', async (t) => {
  const dir = join(FIX, 'rules-bad');
  for (const name of readdirSync(dir).sort()) {
    await t.test(name, () => {
      const expect = /^# expect: (MJ_[A-Z_]+) at (\d+)/.exec(readFileSync(join(dir, name), 'utf8'));
      assert.ok(expect, `${name} must start with "# expect: CODE at LINE"`);
      const tmp = mkdtempSync(join(tmpdir(), 'mj-rules-'));
      try {
        copyFileSync(join(dir, name), join(tmp, name));
        const { faults } = verifyRuleDir(tmp);
        const hit = faults.find((f) => f.code === expect[1]);
        assert.ok(hit, `expected ${expect[1]}, got ${JSON.stringify(faults)}`);
        assert.equal(hit.at, `${join(tmp, name)}:${expect[2]}`);
        assert.throws(() => loadRulePack(tmp), (e: unknown) => e instanceof RuleLoadError && e.message.includes(`${name}:${expect[2]}`));
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });
  }
});

test('a good rule file loads and matches through the parse stage', () => {
  const engine = loadRulePack(join(FIX, 'rules-good'));
  const ev = parseLine('Nov  4 00:00:01 mx1 postfix-out/submission/smtpd[77]: warning: host.example[2001:DB8::7]:4711: SASL PLAIN authentication failed: ', { kind: 'file' }, { now: Date.now() });
  const m = engine.match(ev);
  assert.equal(m?.ip, '2001:db8::7');
  assert.equal(m?.ruleId, 'demo-sasl');
  assert.equal(engine.match({ ...ev, program: 'postfix/qmgr' }), undefined);
});

test('the bundled rule pack loads: every sample of every file passes', () => {
  const engine = loadRulePack(BUNDLED_RULES_DIR);
  assert.ok(engine.files.length >= 20, `only ${engine.files.length} rule files`);
});
