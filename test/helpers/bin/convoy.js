#!/usr/bin/env node
// The tests' `convoy`: the TypeScript sources through tsx, never dist/, so a stale or missing build
// cannot make a test pass or fail. bin/convoy.js (the built program) is tested in test/build/.
import { register } from 'tsx/esm/api';

register();
await import('../../../cli/main.ts');
