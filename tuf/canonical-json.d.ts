// @tufjs/canonical-json ships no types; this is its whole public surface.
declare module '@tufjs/canonical-json' {
  export function canonicalize(value: unknown): string;
}
