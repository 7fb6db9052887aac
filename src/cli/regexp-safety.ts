// Second safety net against catastrophic backtracking (the first is rule lint): let V8 switch a
// regex to its linear-time engine when it backtracks excessively. Imported first by the CLI, so it
// holds for every command whatever flags `node` was started with; V8 reads it at match time.
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
