import type { Command } from '../command.ts';
import { rolloutCommandsOf } from './rollouts.ts';

/* `convoy deployment …`: follow and steer rollouts (cli/commands/rollouts.ts). */

export const commands: Record<string, Command> = rolloutCommandsOf('deployment');
