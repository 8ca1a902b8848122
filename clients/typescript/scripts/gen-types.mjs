#!/usr/bin/env node
// Generate src/generated.ts from docs/ws-message-v3.schema.json: the schema is the one source of
// the message types. `node scripts/gen-types.mjs` writes the file; `--check` only verifies that
// the committed file is current (exit 1 if not), which `npm run build` does first.
//
// The schema is produced by pydantic (scripts/schema at the repository root): its root is the
// message a client sends (WSMessageV3), its `$defs` every frame the server sends, with
// `$defs/ServerMessage` their `oneOf`. Each `$defs` object becomes an interface, a `oneOf` a
// union. This generator handles exactly the JSON Schema subset those models use and fails loudly
// on anything else, so a schema change can never be turned into wrong types silently.

import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve, relative } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const PACKAGE = resolve(HERE, "..");
export const SCHEMA_PATH = resolve(PACKAGE, "../../docs/ws-message-v3.schema.json");
export const OUTPUT_PATH = resolve(PACKAGE, "src/generated.ts");

// Keywords that only annotate or constrain values a TypeScript type cannot express.
const ANNOTATIONS = new Set([
  "title", "description", "default", "pattern", "format", "minimum", "maximum",
  "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "examples", "readOnly",
]);

function fail(path, message) {
  throw new Error(`unsupported schema at ${path}: ${message}`);
}

/** PascalCase from a schema title: "WS_Message_V3" -> "WSMessageV3", "Msg Type" -> "MsgType". */
export function pascal(title) {
  return title
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((word) => word[0].toUpperCase() + word.slice(1))
    .join("");
}

/** UPPER_SNAKE from a schema title: "Msg Type" -> "MSG_TYPE". */
function upperSnake(title) {
  return title.split(/[^A-Za-z0-9]+/).filter(Boolean).join("_").toUpperCase();
}

function checkKeys(node, path, allowed) {
  for (const key of Object.keys(node)) {
    if (!allowed.has(key) && !ANNOTATIONS.has(key)) fail(path, `keyword '${key}'`);
  }
}

/** The TypeScript type of one (non-root) schema node; `defs` are the names `$ref` may use. */
export function typeOf(node, path, defs = new Set()) {
  if (typeof node !== "object" || node === null) fail(path, "not an object");
  checkKeys(node, path, new Set(["const", "enum", "anyOf", "type", "items", "additionalProperties", "$ref"]));
  if ("$ref" in node) {
    checkKeys(node, path, new Set(["$ref"]));
    const name = /^#\/\$defs\/([A-Za-z0-9_]+)$/.exec(node.$ref)?.[1];
    if (!name || !defs.has(name)) fail(path, `unknown $ref ${JSON.stringify(node.$ref)}`);
    return pascal(name);
  }
  if ("const" in node) {
    checkKeys(node, path, new Set(["const", "type"]));
    return JSON.stringify(node.const);
  }
  if ("enum" in node) {
    checkKeys(node, path, new Set(["enum", "type"]));
    return node.enum.map((value) => JSON.stringify(value)).join(" | ");
  }
  if ("anyOf" in node) {
    checkKeys(node, path, new Set(["anyOf"]));
    return node.anyOf.map((item, n) => typeOf(item, `${path}/anyOf/${n}`, defs)).join(" | ");
  }
  switch (node.type) {
    case "string":
      checkKeys(node, path, new Set(["type"]));
      return "string";
    case "integer":
    case "number":
      checkKeys(node, path, new Set(["type"]));
      return "number";
    case "boolean":
      checkKeys(node, path, new Set(["type"]));
      return "boolean";
    case "null":
      checkKeys(node, path, new Set(["type"]));
      return "null";
    case "array":
      checkKeys(node, path, new Set(["type", "items"]));
      return `Array<${node.items ? typeOf(node.items, `${path}/items`, defs) : "unknown"}>`;
    case "object":
      checkKeys(node, path, new Set(["type", "additionalProperties"]));
      if (node.additionalProperties === false) fail(path, "a closed nested object");
      return "{ [key: string]: unknown }";
    default:
      return fail(path, `type ${JSON.stringify(node.type)}`);
  }
}

/** Constraints worth showing in a doc comment (TypeScript cannot check them). */
function docLines(node) {
  const lines = [];
  if (node.description) lines.push(node.description);
  const constraints = [];
  const walk = (n) => {
    if (n.pattern) constraints.push(`pattern \`${n.pattern}\``);
    if (n.format) constraints.push(`format \`${n.format}\``);
    if (n.minimum !== undefined) constraints.push(`minimum ${n.minimum}`);
    (n.anyOf ?? []).forEach(walk);
  };
  walk(node);
  if (constraints.length) lines.push(`Schema: ${constraints.join(", ")}.`);
  return lines;
}

function comment(lines, indent = "") {
  if (!lines.length) return "";
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} * ${l}`).join("\n")}\n${indent} */\n`;
}

/** The text of src/generated.ts for a parsed schema. */
export function generate(schema, sourceName = "docs/ws-message-v3.schema.json") {
  const root = "#";
  if (schema.type !== "object") fail(root, "the root must be an object");
  checkKeys(schema, root, new Set(["$schema", "$defs", "type", "properties", "required", "additionalProperties"]));
  if (!schema.title) fail(root, "the root needs a title");
  if (schema.additionalProperties !== false) fail(root, "the root must be closed");
  const required = new Set(schema.required ?? []);
  const names = Object.keys(schema.properties);
  for (const field of required) if (!names.includes(field)) fail(root, `required '${field}' unknown`);
  const defs = schema.$defs ?? {};
  const defNames = new Set(Object.keys(defs));

  let out = "";
  out += "// GENERATED FILE: do not edit. Source: " + sourceName + "\n";
  out += "// Regenerate with `npm run gen` (scripts/gen-types.mjs); `npm run build` fails while it is stale.\n\n";

  // Enumerations with a title get a named type and a list of their values.
  const aliases = new Map();
  for (const name of names) {
    const node = schema.properties[name];
    if ("enum" in node) {
      if (!node.title) fail(`${root}/properties/${name}`, "an enum needs a title");
      const alias = pascal(node.title);
      aliases.set(name, alias);
      out += comment([`Values of \`${name}\` in the schema.`]);
      out += `export type ${alias} = ${typeOf(node, `${root}/properties/${name}`)};\n`;
      out += `export const ${upperSnake(node.title)}S: readonly ${alias}[] = ${JSON.stringify(node.enum)};\n\n`;
    }
  }

  const iface = pascal(schema.title);
  out += comment([schema.description ?? schema.title, `JSON Schema title: \`${schema.title}\`.`]);
  out += `export interface ${iface} {\n`;
  for (const name of names) {
    const node = schema.properties[name];
    const type = aliases.get(name) ?? typeOf(node, `${root}/properties/${name}`, defNames);
    out += comment(docLines(node), "  ");
    out += `  ${name}${required.has(name) ? "" : "?"}: ${type};\n`;
  }
  out += "}\n\n";

  if (defNames.size) {
    out += "// What the server sends: `$defs` of the schema.\n\n";
    for (const [name, node] of Object.entries(defs)) out += definition(name, node, defNames);
  }

  out += "/** Every field the schema allows (anything else is `unknown-field`). */\n";
  out += `export const FIELDS: readonly (keyof ${iface})[] = ${JSON.stringify(names)};\n\n`;
  out += "/** The fields a message must have. */\n";
  out += `export const REQUIRED_FIELDS: readonly (keyof ${iface})[] = ${JSON.stringify([...required])};\n\n`;

  const patterns = {};
  for (const name of names) {
    const node = schema.properties[name];
    const found = [node, ...(node.anyOf ?? [])].find((n) => n.pattern);
    if (found) patterns[name] = found.pattern;
  }
  out += "/** The regular expression (as a string) each patterned field must match. */\n";
  out += `export const FIELD_PATTERNS: { readonly [field: string]: string } = ${JSON.stringify(patterns, null, 2)};\n`;
  return out;
}

/** One `$defs` entry: a closed object becomes an interface, a `oneOf` of `$ref`s a union. */
function definition(name, node, defNames) {
  const path = `#/$defs/${name}`;
  const typeName = pascal(name);
  const lines = [node.description ?? node.title ?? name, `JSON Schema: \`${path}\`.`];
  if ("oneOf" in node) {
    checkKeys(node, path, new Set(["oneOf"]));
    const members = node.oneOf.map((item, n) => {
      if (Object.keys(item).length !== 1 || !("$ref" in item)) fail(`${path}/oneOf/${n}`, "a oneOf member must be a $ref");
      return typeOf(item, `${path}/oneOf/${n}`, defNames);
    });
    return `${comment(lines)}export type ${typeName} =\n${members.map((m) => `  | ${m}`).join("\n")};\n\n`;
  }
  checkKeys(node, path, new Set(["type", "properties", "required", "additionalProperties"]));
  if (node.type !== "object" || !node.properties) fail(path, "a definition must be an object or a oneOf");
  if (node.additionalProperties !== false) fail(path, "a definition must be closed");
  const required = new Set(node.required ?? []);
  const fields = Object.keys(node.properties);
  for (const field of required) if (!fields.includes(field)) fail(path, `required '${field}' unknown`);
  let out = `${comment(lines)}export interface ${typeName} {\n`;
  for (const field of fields) {
    const property = node.properties[field];
    out += comment(docLines(property), "  ");
    out += `  ${field}${required.has(field) ? "" : "?"}: ${typeOf(property, `${path}/properties/${field}`, defNames)};\n`;
  }
  return `${out}}\n\n`;
}

function main() {
  const check = process.argv.includes("--check");
  let schemaText;
  try {
    schemaText = readFileSync(SCHEMA_PATH, "utf8");
  } catch (error) {
    console.error(`gen-types: cannot read the schema at ${SCHEMA_PATH}: ${error.message}`);
    process.exit(2);
  }
  const text = generate(JSON.parse(schemaText));
  const where = relative(process.cwd(), OUTPUT_PATH);
  if (check) {
    let current = "";
    try {
      current = readFileSync(OUTPUT_PATH, "utf8");
    } catch {
      // missing counts as stale
    }
    if (current !== text) {
      console.error(`gen-types: ${where} is stale (the schema changed): run \`npm run gen\``);
      process.exit(1);
    }
    console.log(`gen-types: ${where} is current`);
    return;
  }
  writeFileSync(OUTPUT_PATH, text);
  console.log(`gen-types: wrote ${where}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
