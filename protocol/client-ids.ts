/**
 * MQTT client ids are bound to who signs in (MQTT §3.1.4: a second CONNECT with a client id in
 * use ends the first session, so a free choice of id lets anyone disconnect anyone). A device's
 * id is `convoyd-<device id>`, the one convoyd has always sent; a person's or a tool's starts with
 * `<user name>:`. Device ids and user names never contain ":", so the two never meet, and no
 * user's prefix is another's.
 */
export const deviceClientId = (deviceId: string): string => `convoyd-${deviceId}`;

export const userClientIdPrefix = (userName: string): string => `${userName}:`;

/** What follows a user's prefix: 1-64 characters a broker and a log line handle plainly. */
const userSuffix = /^[A-Za-z0-9._-]{1,64}$/;

export type ClientIdOwner = { type: 'device'; deviceId: string } | { type: 'user'; name: string };

export function clientIdAllowed(owner: ClientIdOwner, clientId: string): boolean {
  if (owner.type === 'device') return clientId === deviceClientId(owner.deviceId);
  const prefix = userClientIdPrefix(owner.name);
  return clientId.startsWith(prefix) && userSuffix.test(clientId.slice(prefix.length));
}
