import type { Command } from '../command.ts';
import { rolloutCommandsOf } from './rollouts.ts';

/* `convoy group …`: static and dynamic device groups and their members (cli/commands/rollouts.ts). */

export const commands: Record<string, Command> = rolloutCommandsOf('group');
