import assert from "node:assert/strict";
import {
  applyEdits,
  detectStyle,
  findNodeAtLocation,
  insertMember,
  JsonSyntaxError,
  keyOf,
  lineOf,
  members,
  parseStrictJson,
  removeMember,
  textOf,
  valueOf,
} from "./json_edit.ts";

function syntaxError(text: string): JsonSyntaxError {
  try {
    parseStrictJson(text);
  } catch (error) {
    assert.ok(error instanceof JsonSyntaxError, `expected JsonSyntaxError, got ${error}`);
    return error;
  }
  throw new Error(`accepted: ${JSON.stringify(text)}`);
}

Deno.test("json_edit: the tree gives keys and the exact source span of each value", () => {
  const text = '{"a": [1, {"b": "x\\u00e9"}], "c": null}';
  const root = parseStrictJson(text);
  assert.equal(root.type, "object");
  assert.deepEqual(members(root).map(keyOf), ["a", "c"]);
  assert.equal(textOf(text, valueOf(members(root)[0])), '[1, {"b": "x\\u00e9"}]');
  assert.equal(findNodeAtLocation(root, ["c"])?.type, "null");
  assert.equal(findNodeAtLocation(root, ["a", 1, "b"])?.value, "x\u00e9");
});

Deno.test("json_edit: strict JSON, each refusal with its offset and our reason", () => {
  // [text, line, reason]: what Claude Code's JSON.parse refuses, in words a person can act on
  const cases: [string, number, string][] = [
    ["{,}", 1, "expected a quoted key"],
    ["[1,]", 1, "trailing comma before ]"],
    ['{"a":1,\n}', 2, "trailing comma before }"],
    ['{"a": [1,}', 1, "expected a value"],
    ["01", 1, "unexpected text after the JSON value"],
    ["tru", 1, "unexpected character"],
    ['"\\x"', 1, "bad escape in a string"],
    ['"\\u12"', 1, "bad \\u escape"],
    ['"a\nb"', 1, "unescaped control character in a string"],
    ['{"a": "\t"}', 1, "unescaped control character in a string"],
    ['{"a": "x', 1, "unterminated string"],
    ["{} x", 1, "unexpected text after the JSON value"],
    ["", 1, "unexpected end of file"],
    ["{\n", 2, "unexpected end of file"],
    ['{"a": 1.}', 1, "bad number"],
    ['{"a": -}', 1, "unexpected character"],
    ['{\n"a" 1}', 2, 'expected ":" after a key'],
    ['{"a":}', 1, "expected a value"],
    ['{"a": 1\n"b": 2}', 2, 'expected "," or "}"'],
    ['{"a": "x" "b": 2}', 1, 'expected "," or "}"'],
    ["[1 2]", 1, 'expected "," or "]"'],
    ["{'a': 1}", 1, "expected a quoted key"],
    [
      '{"a": 1, // x\n}',
      1,
      "comments are not allowed in JSON (Claude Code reads settings as plain JSON)",
    ],
    ["{\n/* x", 2, "comments are not allowed in JSON (Claude Code reads settings as plain JSON)"],
    // JSON.parse has no other whitespace than space, tab, CR and LF
    ["{\u00a0}", 1, "expected a quoted key"],
    ['{"a": 1}\ufeff', 1, "unexpected text after the JSON value"],
    ["[".repeat(300) + "]".repeat(300), 1, "nested too deeply"],
  ];
  for (const [text, line, reason] of cases) {
    const e = syntaxError(text);
    assert.equal(e.message, reason, JSON.stringify(text));
    assert.equal(lineOf(text, e.offset), line, JSON.stringify(text));
  }
  for (const ok of ['{"a": [1, 2.5e-3, -0, true, false, null, "\\ud800\\"/"]}', "\r\n\t {} "]) {
    assert.deepEqual(parseStrictJson(ok).type, "object");
  }
});

Deno.test("json_edit: a hostile nesting depth is an error, not a stack overflow", () => {
  const deep = "[".repeat(200_000) + "]".repeat(200_000);
  assert.equal(syntaxError(deep).message, "nested too deeply");
  assert.equal(syntaxError(deep).offset, 256);
});

Deno.test("json_edit: a leading BOM is whitespace and node offsets still index the text", () => {
  const text = '\ufeff{"a": "b"}';
  const root = parseStrictJson(text);
  assert.equal(root.offset, 1);
  assert.equal(textOf(text, valueOf(members(root)[0])), '"b"');
});

Deno.test("json_edit: insertMember copies the neighbours' layout; removeMember undoes it exactly", () => {
  const cases: [string, string][] = [
    [`{\n  "a": 1\n}`, `{\n  "a": 1,\n  "k": "v"\n}`],
    [`{\n\t"a" : 1\n}`, `{\n\t"a" : 1,\n\t"k" : "v"\n}`],
    [`{"a":1}`, `{"a":1,"k":"v"}`],
    [`{ "a": 1, "b": 2 }`, `{ "a": 1, "b": 2, "k": "v" }`],
    [`{\r\n    "a": 1\r\n}`, `{\r\n    "a": 1,\r\n    "k": "v"\r\n}`],
    [`{}`, `{\n  "k": "v"\n}`],
  ];
  for (const [before, after] of cases) {
    const root = parseStrictJson(before);
    const inserted = applyEdits(before, [
      insertMember(before, root, "k", '"v"', detectStyle(before, root)),
    ]);
    assert.equal(inserted, after);
    const again = parseStrictJson(inserted);
    const index = members(again).findIndex((m) => keyOf(m) === "k");
    assert.equal(applyEdits(inserted, removeMember(inserted, again, index, ["k"])), before);
  }
  // a first member goes with the whitespace up to the next key, so the layout stays
  const text = `{\n  "a": 1,\n  "b": 2\n}`;
  assert.equal(
    applyEdits(text, removeMember(text, parseStrictJson(text), 0, ["a"])),
    `{\n  "b": 2\n}`,
  );
});
