// The schema is the one source of the message types; the type tests fail for the right reasons.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { generate, OUTPUT_PATH, SCHEMA_PATH } from "../../scripts/gen-types.mjs";
import { FIELDS, MSG_TYPES, TARGETS } from "../../dist/index.js";

const PACKAGE = join(dirname(fileURLToPath(import.meta.url)), "../..");
const schema = JSON.parse(readFileSync(SCHEMA_PATH, "utf8"));

test("src/generated.ts is what the schema generates", () => {
  assert.equal(readFileSync(OUTPUT_PATH, "utf8"), generate(schema));
  assert.deepEqual([...MSG_TYPES], schema.properties.msg_type.enum);
  assert.deepEqual([...TARGETS], schema.properties.target.enum);
  assert.deepEqual([...FIELDS], Object.keys(schema.properties));
});

test("a schema change changes the generated types", () => {
  const changed = structuredClone(schema);
  changed.properties.msg_type.enum.push("ack");
  changed.properties.trace_id = { anyOf: [{ type: "string" }, { type: "null" }], default: null, title: "Trace Id" };
  changed.required.push("trace_id");
  const text = generate(changed);
  assert.match(text, /export type MsgType = "msg" \| "cmd" \| "heartbeat" \| "presence" \| "ack";/);
  assert.match(text, /\n {2}trace_id: string \| null;\n/);
});

test("the generator refuses schema constructs it does not handle", () => {
  const cases = [
    [{ $ref: "#/$defs/X" }, /unknown \$ref "#\/\$defs\/X"/],
    [{ $ref: "#/$defs/ErrorPayload", type: "object" }, /keyword 'type'/],
    [{ oneOf: [{ type: "string" }] }, /keyword 'oneOf'/],
    [{ type: "object", additionalProperties: false }, /closed nested object/],
    [{ type: ["string", "null"] }, /type \["string","null"\]/],
  ];
  for (const [node, error] of cases) {
    const changed = structuredClone(schema);
    changed.properties.extra = node;
    assert.throws(() => generate(changed), error);
  }
  assert.throws(() => generate({ ...schema, additionalProperties: true }), /closed/);
  const open = structuredClone(schema);
  open.$defs.ErrorPayload.additionalProperties = true;
  assert.throws(() => generate(open), /ErrorPayload: a definition must be closed/);
  const loose = structuredClone(schema);
  loose.$defs.ServerMessage.oneOf.push({ type: "object" });
  assert.throws(() => generate(loose), /a oneOf member must be a \$ref/);
});

test("the server's frames are generated: one interface per $defs object, ServerMessage their union", () => {
  const text = generate(schema);
  const members = schema.$defs.ServerMessage.oneOf.map((item) => item.$ref.replace("#/$defs/", ""));
  assert.ok(members.length >= 9, "ServerMessage lost members");
  const union = /export type ServerMessage =\n((?: {2}\| \w+\n?)+);/.exec(text);
  assert.ok(union, text);
  assert.deepEqual(union[1].split("\n").map((line) => line.replace(/^ {2}\| /, "")), members);
  for (const [name, node] of Object.entries(schema.$defs)) {
    if (node.properties) assert.match(text, new RegExp(`export interface ${name} \\{`));
  }
  // A field the schema adds to a server frame appears in its interface.
  const changed = structuredClone(schema);
  changed.$defs.ErrorMessage.properties.trace_id = { type: "string", title: "Trace Id" };
  assert.match(generate(changed), /export interface ErrorMessage \{[^}]*\n {2}trace_id\?: string;\n/);
});

test("each line of rejects.ts fails with the code its directive names", () => {
  const source = readFileSync(join(PACKAGE, "test/types/rejects.ts"), "utf8").split("\n");
  const expected = new Map(); // line number (1-based) -> code
  const stripped = source.map((line, n) => {
    const found = /^\s*\/\/ @ts-expect-error (TS\d+) /.exec(line);
    if (!found) return line;
    expected.set(n + 2, found[1]);
    return "// (directive removed)";
  });
  assert.ok(expected.size >= 15, "rejects.ts lost its cases");
  const file = join(PACKAGE, "test/types/.rejects-stripped.ts");
  const config = join(PACKAGE, "test/types/.tsconfig-stripped.json");
  try {
    writeFileSync(file, stripped.join("\n"));
    writeFileSync(config, JSON.stringify({ extends: "./tsconfig.json", include: [".rejects-stripped.ts"] }));
    const tsc = spawnSync(process.execPath, [join(PACKAGE, "node_modules/typescript/bin/tsc"), "-p", config], {
      cwd: PACKAGE,
      encoding: "utf8",
    });
    const found = new Map();
    for (const match of tsc.stdout.matchAll(/\.rejects-stripped\.ts\((\d+),\d+\): error (TS\d+)/g)) {
      found.set(Number(match[1]), match[2]);
    }
    assert.notEqual(tsc.status, 0);
    assert.deepEqual(found, expected, tsc.stdout);
  } finally {
    rmSync(file, { force: true });
    rmSync(config, { force: true });
  }
});
