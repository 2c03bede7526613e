// lib/photo-ids.ts: a file's name as a photo id of face-service.
import assert from "node:assert/strict";
import { test } from "node:test";

import { MAX_PHOTO_ID_LENGTH, photoId } from "../lib/photo-ids.js";

// face-service's rule for a photo id (the external-id alphabet; never "." or "..").
const PHOTO_ID = /^(?!\.{1,2}$)[A-Za-z0-9._:@+=-]{1,128}$/;

test("a file name becomes a photo id face-service accepts", () => {
  const cases: [string, string][] = [
    ["players.jpg", "players.jpg"],
    ["IMG 0042 (1).JPG", "IMG_0042__1_.JPG"],
    ["été/à.png", "_t___.png"],
    ["..", "__"],
    [".", "_"],
    ["", "photo"],
  ];
  for (const [name, id] of cases) {
    assert.equal(photoId(name), id);
    assert.match(id, PHOTO_ID);
  }
  const long = `${"x".repeat(200)}.jpg`;
  assert.equal(photoId(long).length, MAX_PHOTO_ID_LENGTH);
  assert.ok(photoId(long).endsWith(".jpg"), "a long name keeps its extension");
});
