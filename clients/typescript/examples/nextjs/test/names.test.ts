// lib/names.ts: a person's name as a subject id of face-service, and back.
import assert from "node:assert/strict";
import { test } from "node:test";

import { MAX_ID_LENGTH, cleanName, nameOf, subjectId } from "../lib/names.js";

// face-service's rule for an external id (src/domain/gallery.py): and never "." or "..".
const EXTERNAL_ID = /^(?!\.{1,2}$)[A-Za-z0-9._:@+=-]{1,128}$/;

test("a name becomes a readable id that face-service accepts, and comes back unchanged", () => {
  const cases: [string, string][] = [
    ["Yao Ming", "Yao_Ming"],
    ["José Mourinho", "Jos=C3=A9_Mourinho"],
    ["O'Neal", "O=27Neal"],
    ["snake_case = 1", "snake=5Fcase_=3D_1"],
    ["李娜", "=E6=9D=8E=E5=A8=9C"],
    ["a.b@c.d+e-f:g", "a.b@c.d+e-f:g"],
    [".", "=2E"],
    ["..", "=2E=2E"],
    ["...", "=2E=2E=2E"],
    ["A. B.", "A._B."],
  ];
  for (const [name, id] of cases) {
    assert.equal(subjectId(name), id);
    assert.match(id, EXTERNAL_ID);
    assert.equal(nameOf(id), name);
  }
  assert.equal(cleanName("  Yao \t Ming  "), "Yao Ming", "spaces trimmed and collapsed");
  assert.equal(cleanName(" \n "), "");
  assert.equal(nameOf("yao-ming"), "yao-ming", "an id enrolled some other way reads as itself");
});

test("a name too long for an id is longer than MAX_ID_LENGTH", () => {
  assert.equal(subjectId("a".repeat(128)).length, MAX_ID_LENGTH);
  assert.ok(subjectId("a".repeat(129)).length > MAX_ID_LENGTH);
  assert.ok(subjectId("é".repeat(22)).length > MAX_ID_LENGTH, "6 characters of id each");
});
