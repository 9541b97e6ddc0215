/**
 * Strict JSON with surgical edits, on Microsoft's `jsonc-parser` (the parser VS Code edits its
 * own `settings.json` with): the parse and the edits behind `setup claude` (issue 13 item 10).
 *
 * Strict: jsonc-parser reads JSONC, but with comments disallowed and trailing commas not allowed
 * its grammar is RFC 8259's (whitespace is space, tab, CR and LF only), which is what Claude Code
 * reads settings with (`JSON.parse`). A leading BOM is read as whitespace, as some Windows editors
 * write one. Errors carry the offset of the first problem and a reason in our words, picked from
 * jsonc-parser's error code and where the parser was (inside an object or an array, after a
 * comma), since its codes alone (`PropertyNameExpected`, `InvalidSymbol`) do not say "trailing
 * comma" or "single quotes".
 *
 * Edits are jsonc-parser {@linkcode Edit}s applied with `applyEdits`. `modify` makes those whose
 * span is already right: replacing a value, deleting a member that follows another. Inserting is
 * done here: `modify` either inserts `,"key": value` with no layout, or (given
 * `formattingOptions`) re-formats every line the edit touches, turning the user's `"a" : 1` into
 * `"a": 1`, spreading a one-line `env` over lines and re-indenting a compact file. So the new
 * member copies the separators, indentation and line endings of its neighbours. Deleting a first
 * or only member is done here too: `modify` would take the line break before the next key (or
 * leave the whitespace of an emptied object) with it, and undo must give back the exact bytes.
 *
 * Node offsets refer to the text as given (BOM included), and so do the edits.
 *
 * @module
 */

import {
  applyEdits,
  type Edit,
  findNodeAtLocation,
  modify,
  type Node,
  type ParseOptions,
  parseTree,
  printParseErrorCode,
  visit,
} from "jsonc-parser";

export { applyEdits, type Edit, findNodeAtLocation, type Node };

/** Where and why a text is not plain JSON. */
export class JsonSyntaxError extends Error {
  readonly offset: number;
  constructor(offset: number, reason: string) {
    super(reason);
    this.offset = offset;
    this.name = "JsonSyntaxError";
  }
}

/** RFC 8259 through jsonc-parser's options: no comments, no trailing commas, no empty text. */
const STRICT: ParseOptions = {
  disallowComments: true,
  allowTrailingComma: false,
  allowEmptyContent: false,
};

/** jsonc-parser recurses per level; this bound turns a hostile file into an error, not a crash. */
const MAX_DEPTH = 256;

/** The text jsonc-parser sees: a leading BOM becomes a space, so offsets stay the same. */
function withoutBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? " " + text.slice(1) : text;
}

/** Thrown from a visitor callback to stop jsonc-parser's walk at the first problem. */
class Stop {
  constructor(readonly error: JsonSyntaxError) {}
}

/**
 * Parses one JSON value (optional BOM and surrounding whitespace) into jsonc-parser's tree.
 * Throws {@linkcode JsonSyntaxError} with the offset of the first problem.
 */
export function parseStrictJson(text: string): Node {
  const source = withoutBom(text);
  // One walk, stopped at the first error: it knows the enclosing container and the token
  // before the error, which turn jsonc-parser's error code into a reason a person can act on.
  const open: ("{" | "[")[] = [];
  let previous = "";
  const begin = (bracket: "{" | "[") => (offset: number) => {
    if (open.length >= MAX_DEPTH) throw new Stop(new JsonSyntaxError(offset, "nested too deeply"));
    open.push(bracket);
    previous = bracket;
  };
  // jsonc-parser also ends a container at the end of the text, before reporting the missing
  // bracket: only a real bracket closes one here.
  const end = (bracket: "}" | "]") => (offset: number) => {
    if (source[offset] !== bracket) return;
    open.pop();
    previous = bracket;
  };
  try {
    visit(source, {
      onObjectBegin: begin("{"),
      onObjectEnd: end("}"),
      onArrayBegin: begin("["),
      onArrayEnd: end("]"),
      onObjectProperty: () => {
        previous = "key";
      },
      onLiteralValue: () => {
        previous = "value";
      },
      onSeparator: (character) => {
        previous = character;
      },
      onError: (code, offset, length) => {
        const reason = describe(printParseErrorCode(code), source, offset, length, {
          container: open.at(-1),
          previous,
        });
        throw new Stop(new JsonSyntaxError(Math.min(offset, text.length), reason));
      },
    }, STRICT);
  } catch (stop) {
    if (stop instanceof Stop) throw stop.error;
    throw stop;
  }
  const root = parseTree(source, [], STRICT);
  if (!root) throw new JsonSyntaxError(text.length, "unexpected end of file");
  return root;
}

/**
 * Our words for jsonc-parser's error `code` at `offset`, given where the parser was. After a
 * key or a complete value only one token can follow (`:`, or `,` and the closer), so an error
 * there is reported as that, whatever the next token is: `"a": "x" "b"` misses a comma, even
 * though the scanner trips over the second string first.
 */
function describe(
  code: ReturnType<typeof printParseErrorCode>,
  text: string,
  offset: number,
  length: number,
  where: { container: "{" | "[" | undefined; previous: string },
): string {
  const { container, previous } = where;
  if (code === "InvalidCommentToken" || code === "UnexpectedEndOfComment") {
    return "comments are not allowed in JSON (Claude Code reads settings as plain JSON)";
  }
  if (previous === "key") return 'expected ":" after a key';
  if (previous === "value" || previous === "}" || previous === "]") {
    if (container === undefined) return "unexpected text after the JSON value";
    return `expected "," or "${container === "[" ? "]" : "}"}"`;
  }
  switch (code) {
    case "UnexpectedEndOfString":
      return offset + length >= text.length
        ? "unterminated string"
        : "unescaped control character in a string";
    case "InvalidCharacter":
      return "unescaped control character in a string";
    case "InvalidEscapeCharacter":
      return "bad escape in a string";
    case "InvalidUnicode":
      return "bad \\u escape";
    case "InvalidNumberFormat":
    case "UnexpectedEndOfNumber":
      return "bad number";
  }
  if (offset >= text.length) return "unexpected end of file";
  if (previous === "," && text[offset] === (container === "[" ? "]" : "}")) {
    return `trailing comma before ${text[offset]}`;
  }
  if (container === "{" && (previous === "{" || previous === ",")) return "expected a quoted key";
  if (code === "ValueExpected") return "expected a value";
  return "unexpected character";
}

/** 1-based line of `offset` in `text`. */
export function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let k = 0; k < offset && k < text.length; k++) if (text.charCodeAt(k) === 10) line++;
  return line;
}

// ---------------------------------------------------------------------------------------------
// Members of an object node

/** The property nodes of an object node. */
export function members(obj: Node): Node[] {
  return obj.children ?? [];
}

/** A property's key. */
export function keyOf(member: Node): string {
  return member.children![0].value as string;
}

/** A property's value node. */
export function valueOf(member: Node): Node {
  return member.children![1];
}

/** Offset just past a node. */
export function endOf(node: Node): number {
  return node.offset + node.length;
}

/** The properties of `obj` named `key` (more than one is a file we refuse to guess about). */
export function membersNamed(obj: Node, key: string): Node[] {
  return members(obj).filter((m) => keyOf(m) === key);
}

/** The source text of a node. */
export function textOf(text: string, node: Node): string {
  return text.slice(node.offset, endOf(node));
}

// ---------------------------------------------------------------------------------------------
// Layout of the file we edit

/** How the file is laid out, so inserted text looks like the rest. */
export interface Style {
  eol: string;
  /** One level of indentation (copied from the file: tabs, 2 or 4 spaces…). */
  unit: string;
  /** Multi-line layout; `false` for a compact one-line file. */
  pretty: boolean;
  /** Text between a key and its value, e.g. `": "`. */
  colon: string;
}

/** The layout of `text`, whose top-level object is `root`. */
export function detectStyle(text: string, root: Node): Style {
  const crlf = (text.match(/\r\n/g) ?? []).length;
  const lf = (text.match(/\n/g) ?? []).length;
  const eol = crlf > 0 && crlf * 2 >= lf ? "\r\n" : "\n";
  const first = members(root)[0];
  const pretty = !first || /\n/.test(textOf(text, root));
  let unit = "  ";
  if (first && pretty) {
    const gap = text.slice(root.offset + 1, first.offset);
    if (gap.includes("\n")) unit = gap.slice(gap.lastIndexOf("\n") + 1);
  }
  let colon = pretty ? ": " : ":";
  if (first) colon = colonOf(text, first) ?? colon;
  return { eol, unit, pretty, colon };
}

/** The separator between a member's key and value, unless it spans lines. */
function colonOf(text: string, member: Node): string | null {
  const c = text.slice(endOf(member.children![0]), valueOf(member).offset);
  return c.includes("\n") || c.includes("\r") ? null : c;
}

/** Leading whitespace of the line holding `offset`. */
function lineIndent(text: string, offset: number): string {
  const lineStart = text.lastIndexOf("\n", offset - 1) + 1;
  return /^[ \t]*/.exec(text.slice(lineStart))![0];
}

/** Whitespace between the line start and `offset`, when only whitespace precedes it. */
function indentBefore(text: string, offset: number): string | null {
  const lineStart = text.lastIndexOf("\n", offset - 1) + 1;
  const lead = text.slice(lineStart, offset);
  return /^[ \t]*$/.test(lead) ? lead : null;
}

// ---------------------------------------------------------------------------------------------
// Edits

/** Puts `valueText` (raw JSON) in place of a property's value: `modify`'s edit, byte for byte. */
export function replaceValue(member: Node, valueText: string): Edit {
  const value = valueOf(member);
  return { offset: value.offset, length: value.length, content: valueText };
}

/** Sets the value at `path` to `value` (serialised by `JSON.stringify`) with `modify`. */
export function setValue(text: string, path: string[], value: unknown): Edit[] {
  return modify(withoutBom(text), path, value, {});
}

/** Inserts `"key": valueText` as the last member of `obj`, in the file's layout. */
export function insertMember(
  text: string,
  obj: Node,
  key: string,
  valueText: string,
  style: Style,
): Edit {
  const keyText = JSON.stringify(key);
  const list = members(obj);
  const n = list.length;
  if (n === 0) {
    const interior = { offset: obj.offset + 1, length: obj.length - 2 };
    if (!style.pretty) return { ...interior, content: keyText + style.colon + valueText };
    const base = lineIndent(text, obj.offset);
    return {
      ...interior,
      content: style.eol + base + style.unit + keyText + style.colon + valueText + style.eol + base,
    };
  }
  const last = list[n - 1];
  const prevEnd = n > 1 ? endOf(valueOf(list[n - 2])) : obj.offset + 1;
  const gap = text.slice(prevEnd, last.offset);
  const colon = colonOf(text, last) ?? style.colon;
  let sep: string;
  if (gap.includes("\n")) {
    sep = "," + style.eol + (indentBefore(text, last.offset) ?? lineIndent(text, last.offset));
  } else if (n > 1) {
    sep = gap; // `, ` or `,` as between the existing members
  } else {
    sep = colon.endsWith(" ") ? ", " : ",";
  }
  return { offset: endOf(valueOf(last)), length: 0, content: sep + keyText + colon + valueText };
}

/**
 * Removes member `index` of `obj` (at `path`) with its separator: the inverse of
 * {@linkcode insertMember}. A member after another goes with `modify` (from the end of the one
 * before); a first member takes the whitespace up to the next key, an only one empties the
 * braces, so an object setup filled gives back its exact bytes.
 */
export function removeMember(text: string, obj: Node, index: number, path: string[]): Edit[] {
  const list = members(obj);
  if (list.length === 1) return [{ offset: obj.offset + 1, length: obj.length - 2, content: "" }];
  if (index > 0) return modify(withoutBom(text), path, undefined, {});
  return [{ offset: list[0].offset, length: list[1].offset - list[0].offset, content: "" }];
}
