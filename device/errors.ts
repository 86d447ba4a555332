// The daemon's failures are the shared UpdateError (lib/update-error.ts): the verified downloader
// in lib/ throws it too, for convoyd and for an edge's mirror alike.
export { UpdateError } from '../lib/update-error.ts';
