/**
 * Where a JSON text stops being valid. V8's `JSON.parse` messages stopped carrying a position
 * ("Unexpected token 'o', ..."x": oops }" is not valid JSON"), and a config error must name
 * the line. This scanner runs only after `JSON.parse` has failed, so it only needs to find the
 * first offending offset, not to build values.
 *
 * @module
 */

/** 1-based line of the first offending character in `text` (`text` is known to be invalid). */
export function jsonErrorLine(text: string): number {
  const offset = jsonErrorOffset(text);
  return text.slice(0, offset).split("\n").length;
}

/** Offset of the first character that makes `text` invalid JSON, or `text.length`. */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw i;
  };
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const literal = (word: string) => {
    for (const ch of word) if (text[i++] !== ch) (i--, fail());
  };
  const string = () => {
    i++; // opening quote
    while (i < text.length) {
      const ch = text[i];
      if (ch === '"') return void i++;
      if (ch < " ") fail();
      if (ch === "\\") {
        i++;
        if (text[i] === "u") {
          for (let k = 1; k <= 4; k++) if (!/[0-9a-fA-F]/.test(text[i + k] ?? "")) (i += k, fail());
          i += 5;
          continue;
        }
        if (!'"\\/bfnrt'.includes(text[i] ?? "")) fail();
      }
      i++;
    }
    fail();
  };
  const number = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m || m[0] === "" || m[0] === "-") fail();
    i += m![0].length;
  };
  const value = (): void => {
    ws();
    const ch = text[i];
    if (ch === "{") {
      i++;
      ws();
      if (text[i] === "}") return void i++;
      while (true) {
        ws();
        if (text[i] !== '"') fail();
        string();
        ws();
        if (text[i] !== ":") fail();
        i++;
        value();
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "}") return void i++;
        else fail();
      }
    }
    if (ch === "[") {
      i++;
      ws();
      if (text[i] === "]") return void i++;
      while (true) {
        value();
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === "]") return void i++;
        else fail();
      }
    }
    if (ch === '"') return string();
    if (ch === "t") return literal("true");
    if (ch === "f") return literal("false");
    if (ch === "n") return literal("null");
    if (ch === "-" || (ch >= "0" && ch <= "9")) return number();
    fail();
  };
  try {
    if (text.charCodeAt(0) === 0xfeff) i = 1;
    value();
    ws();
    if (i < text.length) fail();
    return text.length;
  } catch (at) {
    if (typeof at === "number") return Math.min(at, text.length);
    // Nesting deeper than the call stack (`[[[[…`, found by test/fuzz_config_test.ts): the
    // scanner recurses per level, so report the place where it got too deep instead of
    // letting a RangeError surface as an internal error.
    if (at instanceof RangeError) return Math.min(i, text.length);
    throw at;
  }
}
