import type { ErrorCode } from '../protocol/errors.ts';

/**
 * A step of getting a release that failed, with the code the device reports. `transient` failures
 * (network, server outage) are worth retrying as they are; the others (bad signature, wrong hash)
 * will fail the same way until the server side changes. Thrown by the verified downloader
 * (lib/download.ts), which convoyd and an edge's mirror share, and by every update step of convoyd.
 */
export class UpdateError extends Error {
  override readonly name = 'UpdateError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly transient: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
