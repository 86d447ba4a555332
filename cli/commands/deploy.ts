import type { Command } from '../command.ts';
import { rolloutCommandsOf } from './rollouts.ts';

/* `convoy deploy`: a release to a group of devices, in phases (cli/commands/rollouts.ts). */

export const commands: Record<string, Command> = rolloutCommandsOf('deploy');
