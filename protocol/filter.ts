import { ProtocolError } from './errors.ts';

/*
 * The filter language of dynamic device groups, over a device's inventory attributes:
 *
 *   model = "pos-x2" and region = "eu-west"
 *   (disk_free_mb < 500 or os != "debian-12") and not decommissioned = true
 *   arch in ("arm64", "armhf")      hostname ~ "kiosk"      has custom_label
 *
 * Grammar (keywords are lowercase; `and` binds tighter than `or`):
 *   expr       := and ("or" and)*
 *   and        := unary ("and" unary)*
 *   unary      := "not" unary | "(" expr ")" | "has" KEY | KEY OP VALUE | KEY "in" "(" VALUE ("," VALUE)* ")"
 *   OP         := "=" | "!=" | "<" | "<=" | ">" | ">=" | "~"   (~: contains, case-insensitive)
 *   KEY        := [A-Za-z_][A-Za-z0-9_.-]*      VALUE := "string" | number | true | false
 * Pure: parsing and evaluation do no I/O, so the server and the CLI agree on what a filter means.
 * A missing attribute matches nothing but `!=` and `not …` (like SQL's three-valued logic would
 * surprise operators, so a device without `region` is simply "not in eu-west").
 */

export type FilterValue = string | number | boolean;
export type Comparison = '=' | '!=' | '<' | '<=' | '>' | '>=' | '~';
export type Filter =
  | { type: 'and'; left: Filter; right: Filter }
  | { type: 'or'; left: Filter; right: Filter }
  | { type: 'not'; operand: Filter }
  | { type: 'has'; key: string }
  | { type: 'compare'; key: string; op: Comparison; value: FilterValue }
  | { type: 'in'; key: string; values: FilterValue[] };

export type Attributes = Readonly<Record<string, FilterValue | null | undefined>>;

/** Upper bounds, so a filter stays cheap to evaluate over thousands of devices. */
export const maxFilterLength = 1000;
const maxDepth = 32;

type Token = { kind: 'word' | 'string' | 'number' | 'op' | 'punct'; text: string; at: number };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const start = i;
    if (c === '"') {
      let value = '';
      i++;
      for (;;) {
        if (i >= text.length) throw new ProtocolError('invalid_request', `filter: unterminated string starting at ${start + 1}`);
        const d = text[i]!;
        if (d === '\\' && i + 1 < text.length) {
          value += text[i + 1];
          i += 2;
          continue;
        }
        if (d === '"') break;
        value += d;
        i++;
      }
      i++;
      tokens.push({ kind: 'string', text: value, at: start });
    } else if (/[0-9-]/.test(c) && /^-?\d+(\.\d+)?/.test(text.slice(i))) {
      const match = /^-?\d+(\.\d+)?/.exec(text.slice(i))![0];
      i += match.length;
      tokens.push({ kind: 'number', text: match, at: start });
    } else if (/[A-Za-z_]/.test(c)) {
      const match = /^[A-Za-z_][A-Za-z0-9_.-]*/.exec(text.slice(i))![0];
      i += match.length;
      tokens.push({ kind: 'word', text: match, at: start });
    } else if (/^(!=|<=|>=|=|<|>|~)/.test(text.slice(i))) {
      const match = /^(!=|<=|>=|=|<|>|~)/.exec(text.slice(i))![0];
      i += match.length;
      tokens.push({ kind: 'op', text: match, at: start });
    } else if (c === '(' || c === ')' || c === ',') {
      i++;
      tokens.push({ kind: 'punct', text: c, at: start });
    } else {
      throw new ProtocolError('invalid_request', `filter: unexpected "${c}" at ${start + 1}`);
    }
  }
  return tokens;
}

const keywords = new Set(['and', 'or', 'not', 'in', 'has', 'true', 'false']);

/** Parses a filter, or throws a ProtocolError naming the position of the mistake. */
export function parseFilter(text: string): Filter {
  if (text.length > maxFilterLength) throw new ProtocolError('invalid_request', `filter: longer than ${maxFilterLength} characters`);
  const tokens = tokenize(text);
  let pos = 0;
  const peek = () => tokens[pos];
  const where = () => (peek() ? `at ${peek()!.at + 1} ("${peek()!.text}")` : 'at the end');
  const fail = (what: string): never => {
    throw new ProtocolError('invalid_request', `filter: expected ${what} ${where()}`);
  };
  const isWord = (word: string) => peek()?.kind === 'word' && peek()!.text === word;
  const expectPunct = (p: string) => {
    if (peek()?.kind !== 'punct' || peek()!.text !== p) fail(`"${p}"`);
    pos++;
  };
  const key = (): string => {
    const token = peek();
    if (token?.kind !== 'word' || keywords.has(token.text)) return fail('an attribute name');
    pos++;
    return token.text;
  };
  const value = (): FilterValue => {
    const token = peek();
    if (!token) return fail('a value');
    pos++;
    if (token.kind === 'string') return token.text;
    if (token.kind === 'number') return Number(token.text);
    if (token.kind === 'word' && (token.text === 'true' || token.text === 'false')) return token.text === 'true';
    pos--;
    return fail('a value ("text", a number, true or false)');
  };
  const expr = (depth: number): Filter => {
    if (depth > maxDepth) fail(`at most ${maxDepth} nested terms`);
    let left = conj(depth);
    while (isWord('or')) {
      pos++;
      left = { type: 'or', left, right: conj(depth) };
    }
    return left;
  };
  const conj = (depth: number): Filter => {
    let left = unary(depth);
    while (isWord('and')) {
      pos++;
      left = { type: 'and', left, right: unary(depth) };
    }
    return left;
  };
  const unary = (depth: number): Filter => {
    if (depth > maxDepth) fail(`at most ${maxDepth} nested terms`);
    if (isWord('not')) {
      pos++;
      return { type: 'not', operand: unary(depth + 1) };
    }
    if (peek()?.kind === 'punct' && peek()!.text === '(') {
      pos++;
      const inner = expr(depth + 1);
      expectPunct(')');
      return inner;
    }
    if (isWord('has')) {
      pos++;
      return { type: 'has', key: key() };
    }
    const name = key();
    if (isWord('in')) {
      pos++;
      expectPunct('(');
      const values = [value()];
      while (peek()?.kind === 'punct' && peek()!.text === ',') {
        pos++;
        values.push(value());
      }
      expectPunct(')');
      return { type: 'in', key: name, values };
    }
    const op = peek();
    if (op?.kind !== 'op') return fail('an operator (=, !=, <, <=, >, >=, ~ or in)');
    pos++;
    return { type: 'compare', key: name, op: op.text as Comparison, value: value() };
  };
  if (tokens.length === 0) fail('a condition');
  const filter = expr(0);
  if (pos < tokens.length) fail('"and", "or" or the end');
  return filter;
}

function equal(actual: FilterValue, wanted: FilterValue): boolean {
  if (typeof wanted === 'number') return Number(actual) === wanted;
  if (typeof wanted === 'boolean') return actual === wanted || String(actual) === String(wanted);
  return String(actual) === wanted;
}

function order(actual: FilterValue, wanted: FilterValue): number | undefined {
  if (typeof wanted === 'number') {
    const n = typeof actual === 'number' ? actual : Number(actual);
    return Number.isFinite(n) && String(actual).trim() !== '' ? n - wanted : undefined;
  }
  if (typeof wanted === 'string' && typeof actual === 'string') return actual < wanted ? -1 : actual > wanted ? 1 : 0;
  return undefined;
}

/** Whether a device with these attributes matches the filter. */
export function matchesFilter(filter: Filter, attributes: Attributes): boolean {
  switch (filter.type) {
    case 'and':
      return matchesFilter(filter.left, attributes) && matchesFilter(filter.right, attributes);
    case 'or':
      return matchesFilter(filter.left, attributes) || matchesFilter(filter.right, attributes);
    case 'not':
      return !matchesFilter(filter.operand, attributes);
    case 'has':
      return attributes[filter.key] !== undefined && attributes[filter.key] !== null;
    case 'in': {
      const actual = attributes[filter.key];
      return actual !== undefined && actual !== null && filter.values.some((v) => equal(actual, v));
    }
    case 'compare': {
      const actual = attributes[filter.key];
      if (actual === undefined || actual === null) return filter.op === '!=';
      switch (filter.op) {
        case '=':
          return equal(actual, filter.value);
        case '!=':
          return !equal(actual, filter.value);
        case '~':
          return String(actual).toLowerCase().includes(String(filter.value).toLowerCase());
        default: {
          const d = order(actual, filter.value);
          if (d === undefined) return false;
          return filter.op === '<' ? d < 0 : filter.op === '<=' ? d <= 0 : filter.op === '>' ? d > 0 : d >= 0;
        }
      }
    }
  }
}
