/*
 * One POSIX tar (ustar) header block, read the one way both readers of tar archives here need:
 * the server scanning an uploaded package for its metadata (server/bundles/packages.ts) and the
 * daemon checking an archive before it extracts it as root (device/archive-check.ts). Pure.
 */

/** The fields of a 512-byte header block that those readers use. */
export interface TarHeader {
  /** `prefix/name` of ustar; GNU long names and pax paths come in extra entries before it. */
  path: string;
  /** The type flag: '0' or '\0' a file, '5' a directory, '2' a symlink, 'L'/'K' GNU long name/link, 'x'/'g' pax. */
  type: string;
  size: number;
  /** The size rounded up to whole 512-byte blocks: what follows the header in the archive. */
  padded: number;
  mode: number;
  linkTarget: string;
}

/** The header, or undefined when its size field is not a number (a corrupt or hostile archive). */
export function readTarHeader(header: Buffer): TarHeader | undefined {
  const size = tarNumber(header.subarray(124, 136));
  if (size === undefined) return undefined;
  const prefix = header.toString('latin1', 257, 263).startsWith('ustar') ? cString(header.subarray(345, 500)) : '';
  const name = cString(header.subarray(0, 100));
  return {
    path: prefix ? `${prefix}/${name}` : name,
    type: String.fromCharCode(header[156]!),
    size,
    padded: size + ((512 - (size % 512)) % 512),
    mode: tarNumber(header.subarray(100, 108)) ?? 0,
    linkTarget: cString(header.subarray(157, 257)),
  };
}

/** A record of a pax extended header (`<len> key=value\n` lines), e.g. `path` or `linkpath`. */
export function paxRecord(text: string, key: string): string | undefined {
  return new RegExp(`(?:^|\\n)\\d+ ${key}=([^\\n]*)\\n`).exec(text)?.[1];
}

/** A NUL-terminated string field. */
export function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.toString('utf8', 0, end === -1 ? bytes.length : end);
}

/** Octal, NUL/space terminated; or base-256 when the high bit of the first byte is set. */
function tarNumber(field: Buffer): number | undefined {
  if (field[0]! & 0x80) {
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    return Number.isSafeInteger(value) ? value : undefined;
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) return undefined;
  return parseInt(text, 8);
}
