// Literals and identifiers for ClickHouse queries built as text: the Debian server (18.16) has no
// query parameters, so every value a query names goes through these (rows go in as JSONEachRow, never
// as SQL). Strings become single-quoted literals with every byte that could end or bend them escaped.

/** A database or table name the app accepts: a letter or `_`, then letters, digits and `_` (≤ 64). */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** Whether `name` is an identifier {@link sqlIdentifier} accepts. */
export function isSqlIdentifier(name: string): boolean {
  return IDENTIFIER.test(name);
}

/**
 * `name` as a back-quoted identifier.
 * @throws Error when `name` is not a plain identifier (see {@link isSqlIdentifier}).
 */
export function sqlIdentifier(name: string): string {
  if (!IDENTIFIER.test(name)) throw new Error(`not an identifier: ${JSON.stringify(name.slice(0, 80))}`);
  return `\`${name}\``;
}

/** ClickHouse's escapes inside a quoted string for the characters that need one. */
const ESCAPES: Readonly<Record<string, string>> = {
  "\\": "\\\\",
  "'": "\\'",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\0": "\\0",
};

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * `value` as a single-quoted ClickHouse string literal: backslash and quote escaped, control
 * characters (U+0000–U+001F, U+007F) written as escapes, everything else (UTF-8) as it is. The
 * literal reads back as exactly `value`'s UTF-8 bytes.
 * @throws Error for a string with a lone surrogate (it has no UTF-8 form to compare with).
 */
export function sqlString(value: string): string {
  if (LONE_SURROGATE.test(value)) throw new Error("a string with a lone surrogate cannot be quoted");
  // eslint-disable-next-line no-control-regex
  const body = value.replace(/[\\'\u0000-\u001f\u007f]/g, (c) => {
    return ESCAPES[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
  });
  return `'${body}'`;
}

/**
 * A whole number as a literal.
 * @throws Error when `value` is not a safe integer (a NaN or a fraction never reaches a query).
 */
export function sqlInteger(value: number): string {
  if (!Number.isSafeInteger(value)) throw new Error(`not a safe integer: ${String(value)}`);
  return String(value);
}

/** `values` as a parenthesised list of string literals (`('a', 'b')`); `('')`-free: at least one. */
export function sqlStringList(values: readonly string[]): string {
  if (values.length === 0) throw new Error("an IN list needs at least one value");
  return `(${values.map(sqlString).join(", ")})`;
}
