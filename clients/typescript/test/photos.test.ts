// Photos in a collection (docs/api.md, "Photos"), through the client, against the live servers that
// tests/e2e/test_typescript_client.py starts: FACE_SERVICE_URL on the fake backend (any photo that is
// not a flat colour holds one "face"), FACE_SERVICE_REAL_URL on the real models.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";

import { FaceServiceClient, FaceServiceError } from "../src/index.js";

const url = process.env.FACE_SERVICE_URL ?? "";
const realUrl = process.env.FACE_SERVICE_REAL_URL ?? "";
const apiKey = process.env.FACE_SERVICE_KEY ?? "";
const photos = process.env.FACE_SERVICE_PHOTOS ?? "";
const photo = async (name: string): Promise<Blob> => new Blob([await readFile(join(photos, name))]);
const fresh = (label: string): string => `${label}-${randomUUID().slice(0, 8)}`;

function failsWith(status: number, code: string, fromService = true) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof FaceServiceError, String(error));
    assert.deepEqual([error.status, error.code], [status, code], error.message);
    assert.equal(Boolean(error.requestId), fromService, "a request id when the service answered, none when refused here");
    return true;
  };
}

test("photos: index, the same bytes again are a duplicate, other bytes a conflict; get, list, delete", async () => {
  const client = new FaceServiceClient({ baseUrl: url, apiKey });
  const name = fresh("photos");
  await client.createCollection(name);
  const first = await client.indexPhoto(name, "2026:party:img_0001.jpg", await photo("yaoming.jpg"), { quality: "none" });
  assert.equal(first.photo_id, "2026:party:img_0001.jpg");
  assert.equal(first.duplicate, false);
  assert.equal(first.faces.length, 1);
  assert.match(first.faces[0]?.face_id ?? "", /^[0-9a-f]{32}$/);
  assert.equal(first.faces[0]?.landmarks.length, 5);
  const again = await client.indexPhoto(name, "2026:party:img_0001.jpg", await photo("yaoming.jpg"), { quality: "none" });
  assert.deepEqual([again.duplicate, again.faces[0]?.face_id], [true, first.faces[0]?.face_id]);
  await assert.rejects(client.indexPhoto(name, "2026:party:img_0001.jpg", await photo("t1.jpg")), failsWith(409, "photo_exists"));
  const empty = await client.indexPhoto(name, "blank.png", await photo("blank.png"));
  assert.deepEqual(empty.faces, [], "a photo with no face is stored too");
  await client.indexPhoto(name, "team.jpg", await photo("players.jpg"), { quality: "none", maxFaces: 1, minFaceSize: 0 });

  const stored = await client.getPhoto(name, "2026:party:img_0001.jpg");
  assert.deepEqual([stored.photo_id, stored.faces.length, stored.faces[0]?.external_id], ["2026:party:img_0001.jpg", 1, null]);
  assert.match(stored.source_digest, /^[0-9a-f]{64}$/);
  const page = await client.listPhotos(name, { limit: 2 });
  assert.deepEqual(page.photos.map((p) => p.photo_id), ["2026:party:img_0001.jpg", "blank.png"]);
  assert.equal(page.next, "blank.png");
  const all: string[] = [];
  for await (const listed of client.iteratePhotos(name, { limit: 1 })) all.push(listed.photo_id);
  assert.deepEqual(all, ["2026:party:img_0001.jpg", "blank.png", "team.jpg"]);
  assert.equal((await client.getCollection(name)).photos, 3);

  assert.deepEqual(await client.deletePhoto(name, "team.jpg"), { photo_id: "team.jpg", deleted_faces: 1 });
  await assert.rejects(client.getPhoto(name, "team.jpg"), failsWith(404, "photo_not_found"));
  await assert.rejects(client.deletePhoto(name, "team.jpg"), failsWith(404, "photo_not_found"));
  await client.deleteCollection(name);
});

test("photos: an id a URL would rewrite is refused before sending; one the service refuses is its 400", async () => {
  const client = new FaceServiceClient({ baseUrl: url, apiKey });
  const image = await photo("yaoming.jpg");
  for (const id of ["", ".", "..", "a/b", "a?b", "a#b", "a%2Fb"]) {
    await assert.rejects(client.indexPhoto("any", id, image), failsWith(400, "invalid_photo_id", false));
    await assert.rejects(client.getPhoto("any", id), failsWith(400, "invalid_photo_id", false));
    await assert.rejects(client.deletePhoto("any", id), failsWith(400, "invalid_photo_id", false));
  }
  const name = fresh("photo-ids");
  await client.createCollection(name);
  for (const id of ["a b.jpg", "x".repeat(129), "olé.jpg"]) {
    await assert.rejects(client.indexPhoto(name, id, image), failsWith(400, "invalid_photo_id"));
  }
  await client.deleteCollection(name);
});

test("real models: Yao Ming's selfie finds the team photo only, by image and by embedding", async () => {
  assert.ok(realUrl, "FACE_SERVICE_REAL_URL must point at a server on the real models");
  const real = new FaceServiceClient({ baseUrl: realUrl, apiKey, timeoutMs: 60_000 });
  const name = fresh("event");
  await real.createCollection(name);
  const detected: Record<string, number> = {};
  for (const file of ["players.jpg", "t1.jpg", "gdp.jpg"]) {
    const indexed = await real.indexPhoto(name, file, await photo(file));
    assert.ok(indexed.faces.length > 0, `${file}: faces indexed`);
    detected[file] = indexed.faces.length + indexed.unindexed.length;
    for (const face of indexed.unindexed) assert.ok(face.reasons.length > 0, "an unindexed face says why");
  }
  assert.deepEqual(detected, { "players.jpg": 22, "t1.jpg": 6, "gdp.jpg": 5 }, "every face detected: indexed or unindexed");

  const found = await real.searchPhotos(name, await photo("yaoming.jpg"));
  assert.deepEqual(found.photos.map((p) => p.photo_id), ["players.jpg"]);
  assert.equal(found.count, 1);
  assert.equal(found.next, null);
  const [match] = found.photos;
  assert.ok(match && match.match && match.similarity >= found.threshold);
  assert.equal(match.bbox?.length, 4, "a face indexed from a photo has its box");
  assert.ok(found.probe, "an image's probe face is described");

  const { embedding, model } = await real.extractEmbedding(await photo("yaoming.jpg"));
  assert.ok(embedding && model, "the selfie's embedding");
  const byEmbedding = await real.searchPhotos(name, { embedding, model });
  assert.deepEqual(byEmbedding.photos.map((p) => [p.photo_id, p.face_id]), [["players.jpg", match.face_id]]);
  assert.equal(byEmbedding.probe, null);

  const everyone = await real.searchPhotos(name, await photo("yaoming.jpg"), { minSimilarity: -1, topK: 2 });
  assert.deepEqual(everyone.photos.map((p) => p.photo_id)[0], "players.jpg");
  assert.equal(everyone.count, 3);
  assert.ok(everyone.next, "a second page");
  const rest = await real.searchPhotos(name, await photo("yaoming.jpg"), { minSimilarity: -1, topK: 2, after: everyone.next ?? "" });
  assert.equal(rest.photos.length, 1);
  assert.equal(rest.next, null);
  await assert.rejects(real.searchPhotos(name, await photo("yaoming.jpg"), { face: 5 }), failsWith(422, "no_face"));
  await real.deleteCollection(name);
});
