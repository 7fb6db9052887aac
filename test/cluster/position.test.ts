import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PositionLog, POSITION_FILE } from '../../src/cluster/position.js';

const NOW = 1_800_000_000_000;

test('position journal: batches replay in order, torn tail and hostile lines are not trusted', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mj-pos-'));
  const p = new PositionLog(dir);
  assert.equal(p.load(NOW), undefined);
  const all = new Map([['192.0.2.1', NOW + 1000], ['192.0.2.2', NOW + 2000]]);
  p.append('1-0', all, [], all);
  p.append('2-0', new Map([['192.0.2.3', NOW + 3000]]), ['192.0.2.1'], all);
  p.append('3-0', new Map([['192.0.2.4', NOW - 1]]), [], all); // already over at load time
  p.close();
  appendFileSync(join(dir, POSITION_FILE), '{"id":"4-0","set":{"0.0.0.0/0":'); // torn by kill -9
  const st = new PositionLog(dir).load(NOW)!;
  assert.equal(st.id, '3-0');
  assert.deepEqual([...st.bans].sort(), [['192.0.2.2', NOW + 2000], ['192.0.2.3', NOW + 3000]]);
  writeFileSync(join(dir, POSITION_FILE), '{"id":"9-0","set":{"0.0.0.0/0":' + (NOW + 5) + ',"192.0.2.9; x":1,"192.0.2.8":' + (NOW + 5) + '}}\n');
  assert.deepEqual([...new PositionLog(dir).load(NOW)!.bans.keys()], ['192.0.2.8']);
});

test('position journal compacts into one line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mj-pos-'));
  const p = new PositionLog(dir);
  const all = new Map([['192.0.2.1', NOW + 1000]]);
  for (let i = 1; i <= 1200; i++) p.append(`${i}-0`, all, [], all);
  p.close();
  assert.ok(readFileSync(join(dir, POSITION_FILE), 'utf8').split('\n').length < 300);
  assert.equal(new PositionLog(dir).load(NOW)!.id, '1200-0');
});
