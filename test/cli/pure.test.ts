import test from 'ava';
import { inCliTerms } from '../../cli/command.ts';
import { escapeControl, escapeText, toJson } from '../../cli/output.ts';
import { describeProgress, formatBytes } from '../../cli/progress.ts';

test('output: control characters from the server reach the terminal escaped, never raw', (t) => {
  const table: [string, string][] = [
    ['plain text', 'plain text'],
    ['\x1b[2J\x1b[Hcleared', '\\x1b[2J\\x1b[Hcleared'],
    ['title\x1b]0;pwned\x07', 'title\\x1b]0;pwned\\x07'],
    ['line\nbreak\ttab\rreturn', 'line\\x0abreak\\x09tab\\x0dreturn'],
    ['c1 csi \u009b31m', 'c1 csi \\x9b31m'],
    ['del\x7f', 'del\\x7f'],
    ['bidi \u202eevil\u202c', 'bidi \\u202eevil\\u202c'],
    ['unicode ok: é → ✓', 'unicode ok: é → ✓'],
  ];
  for (const [raw, shown] of table) t.is(escapeControl(raw), shown, JSON.stringify(raw));
  t.is(escapeText('two\nlines\x1b[1m'), 'two\nlines\\x1b[1m', 'our own newlines stay');
  const json = toJson({ message: 'a\x1b[31m\u009b\u202e' });
  t.false(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/.test(json), json);
  t.deepEqual(JSON.parse(json), { message: 'a\x1b[31m\u009b\u202e' }, 'JSON readers get the same value back');
});

test('errors: the server\'s API names become the CLI\'s flags', (t) => {
  const table: [string, string][] = [
    ['an artifact of type "package" needs ?format=deb|rpm|npm|generic', 'an artifact of type "package" needs --format deb|rpm|npm|generic'],
    ['package version missing: a deb file does not say, give package.version', 'package version missing: a deb file does not say, give --package-version'],
    ['package_name, package_version and architecture need format=deb|rpm|npm|generic', '--package-name, --package-version and --arch need --format deb|rpm|npm|generic'],
    ['invalid query string: format: Invalid option', 'invalid --format: Invalid option'],
    ['give package.name, package.architecture', 'give --package-name, --arch'],
    ['per_page must be at most 100', '--per-page must be at most 100'],
    ['bundle "nope" does not exist', 'bundle "nope" does not exist'],
  ];
  for (const [api, cli] of table) t.is(inCliTerms(api), cli);
});

test('progress: bytes, rate and time left', (t) => {
  t.is(formatBytes(512), '512 B');
  t.is(formatBytes(1536), '1.50 KiB');
  t.is(formatBytes(1024 ** 3), '1.00 GiB');
  t.is(describeProgress({ done: 512 * 1024 ** 2, total: 1024 ** 3, start: 0, elapsedMs: 10_000 }), '512 MiB / 1.00 GiB (50%)  51.2 MiB/s  0:10 left');
  t.is(describeProgress({ done: 0, total: 100, start: 0, elapsedMs: 0 }), '0 B / 100 B (0%)  0 B/s  --:-- left');
  // A resumed push: the rate counts only the bytes sent in this run.
  t.is(describeProgress({ done: 900, total: 1000, start: 800, elapsedMs: 1000 }), '900 B / 1000 B (90%)  100 B/s  0:01 left');
});
