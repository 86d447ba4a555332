#!/usr/bin/env -S node --max-semi-space-size=1
// Runs the TypeScript sources directly through tsx's loader: no build step to forget.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
