// docs/openapi.json and a small JSON Schema checker for it, shared by the e2e files that check
// real answers against the document (tests/openapi.test.mjs, tests/replicas.test.mjs).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { ROOT } from "./harness.mjs";

export const DOC_TEXT = readFileSync(path.join(ROOT, "docs", "openapi.json"), "utf8");
export const doc = JSON.parse(DOC_TEXT);
export const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

export function resolve(ref) {
  assert.ok(ref.startsWith("#/"), `only local references: ${ref}`);
  let v = doc;
  for (const part of ref.slice(2).split("/")) {
    v = v?.[part.replaceAll("~1", "/").replaceAll("~0", "~")];
  }
  assert.ok(v !== undefined, `${ref} does not resolve`);
  return v;
}

export const deref = (v) => (v && v.$ref ? resolve(v.$ref) : v);

/** The JSON schema of the answer `status` to the operation at (path, method), or undefined if not documented. */
export function responseSchema(p, method, status) {
  const op = doc.paths[p][method.toLowerCase()];
  const r = deref(op.responses[String(status)]);
  return r?.content?.["application/json"]?.schema;
}

export function requestSchema(p, method) {
  const op = doc.paths[p][method.toLowerCase()];
  return deref(op.requestBody)?.content?.["application/json"]?.schema;
}

// ---------------------------------------------------------------------------
// A small JSON Schema checker for the keywords the document uses. An unknown keyword is an
// error, so the document cannot use one this checker would silently ignore.

const ANNOTATIONS = new Set(["description", "default", "examples", "discriminator", "title", "format"]);
const KEYWORDS = new Set([
  "$ref", "type", "const", "enum", "properties", "required", "additionalProperties", "items", "minItems", "uniqueItems",
  "minimum", "maximum", "minLength", "pattern", "oneOf", "anyOf",
]);
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function typeOk(t, v) {
  switch (t) {
    case "null": return v === null;
    case "boolean": return typeof v === "boolean";
    case "integer": return Number.isInteger(v);
    case "number": return typeof v === "number" && Number.isFinite(v);
    case "string": return typeof v === "string";
    case "array": return Array.isArray(v);
    case "object": return v !== null && typeof v === "object" && !Array.isArray(v);
    default: throw new Error(`unknown type ${t}`);
  }
}

/** Returns a list of messages, empty when `value` matches `schema`. */
export function validate(schema, value, at = "$") {
  if (schema === true || schema === undefined) return [];
  if (schema === false) return [`${at}: not allowed`];
  for (const k of Object.keys(schema)) {
    if (!KEYWORDS.has(k) && !ANNOTATIONS.has(k)) throw new Error(`the checker does not know the keyword ${k} (at ${at})`);
  }
  const errs = [];
  if (schema.$ref) errs.push(...validate(resolve(schema.$ref), value, at));
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => typeOk(t, value))) return [...errs, `${at}: ${JSON.stringify(value)} is not of type ${types.join("|")}`];
  }
  if ("const" in schema && !isDeepEqual(schema.const, value)) errs.push(`${at}: ${JSON.stringify(value)} is not ${JSON.stringify(schema.const)}`);
  if (schema.enum && !schema.enum.some((e) => isDeepEqual(e, value))) errs.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  if (schema.format === "date-time" && typeof value === "string" && !DATE_TIME.test(value)) errs.push(`${at}: ${value} is not a date-time`);
  if (typeOk("object", value)) {
    for (const k of schema.required ?? []) if (!(k in value)) errs.push(`${at}: missing ${k}`);
    for (const [k, v] of Object.entries(value)) {
      if (schema.properties && k in schema.properties) errs.push(...validate(schema.properties[k], v, `${at}.${k}`));
      else if (schema.additionalProperties !== undefined) errs.push(...validate(schema.additionalProperties, v, `${at}.${k}`));
    }
  }
  if (Array.isArray(value)) {
    if (schema.items) value.forEach((v, i) => errs.push(...validate(schema.items, v, `${at}[${i}]`)));
    if (schema.minItems !== undefined && value.length < schema.minItems) errs.push(`${at}: fewer than ${schema.minItems} items`);
    if (schema.uniqueItems && new Set(value.map((v) => JSON.stringify(v))).size !== value.length) errs.push(`${at}: items repeat`);
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) errs.push(`${at}: ${value} < ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) errs.push(`${at}: ${value} > ${schema.maximum}`);
  }
  if (typeof value === "string") {
    if (schema.minLength !== undefined && [...value].length < schema.minLength) errs.push(`${at}: shorter than ${schema.minLength}`);
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, "u").test(value)) errs.push(`${at}: does not match ${schema.pattern}`);
  }
  if (schema.oneOf) {
    const results = schema.oneOf.map((s) => validate(s, value, at));
    const n = results.filter((r) => r.length === 0).length;
    if (n !== 1) errs.push(`${at}: matches ${n} of oneOf (${results.map((r) => r[0] ?? "ok").join("; ")})`);
  }
  if (schema.anyOf && !schema.anyOf.some((s) => validate(s, value, at).length === 0)) errs.push(`${at}: matches none of anyOf`);
  return errs;
}

function isDeepEqual(a, b) {
  try {
    assert.deepStrictEqual(a, b);
    return true;
  } catch {
    return false;
  }
}

/** Asserts that the answer's status is documented for (path, method) and its body matches the schema. */
export function assertDocumented(res, p, method, what = `${method} ${p}`) {
  const content = deref(doc.paths[p][method.toLowerCase()].responses[String(res.status)])?.content;
  if (content && !content["application/json"]) {
    // A documented answer that is not JSON (the dashboard's files, /metrics): its media type.
    const types = Object.keys(content);
    const got = (res.headers.get("content-type") ?? "").split(";")[0].trim();
    assert.ok(types.includes(got), `${what}: content-type ${got} is not one of the documented ${types}`);
    assert.ok(res.text.length > 0, `${what}: an empty body`);
    return;
  }
  const schema = responseSchema(p, method, res.status);
  assert.ok(schema, `${what}: status ${res.status} is not documented for ${method} ${p}: ${res.text.slice(0, 300)}`);
  const errs = validate(schema, res.json);
  assert.deepEqual(errs, [], `${what}: HTTP ${res.status} ${res.text.slice(0, 500)}`);
}

/** Asserts that every header documented for the answer (path, method, status) is present and matches its schema. */
export function assertDocumentedHeaders(res, p, method, what = `${method} ${p}`) {
  const documented = deref(doc.paths[p][method.toLowerCase()].responses[String(res.status)])?.headers ?? {};
  assert.ok(Object.keys(documented).length > 0, `${what}: no headers documented for ${res.status}`);
  for (const [name, h] of Object.entries(documented)) {
    const value = res.headers.get(name);
    assert.ok(value !== null, `${what}: the documented header ${name} is missing`);
    assert.deepEqual(validate(deref(h).schema, value), [], `${what}: header ${name}: ${value}`);
  }
}
