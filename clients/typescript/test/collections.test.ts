// The collection routes, through the client, against the live servers that the service's test suite
// starts (tests/e2e/test_typescript_client.py): FACE_SERVICE_URL on the fake backend (its gallery in
// memory; any photo that is not a flat colour holds one "face"), FACE_SERVICE_REAL_URL on the real
// models (an SQLite gallery in a temporary DATA_DIR).
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
const FAKE_MODEL = "fake:00000000";
const photo = async (name: string): Promise<Blob> => new Blob([await readFile(join(photos, name))]);
const client = new FaceServiceClient({ baseUrl: url, apiKey });
/** A collection name of its own for each test, so that a test never sees another's faces. */
const fresh = (label: string): string => `${label}-${randomUUID().slice(0, 8)}`;

/** A unit vector of the fake model's dimension, different for each seed. */
function unitVector(seed: number): number[] {
  const vector = Array.from({ length: 512 }, (_, index) => Math.sin(seed * 7919 + index * (seed + 1)));
  const norm = Math.hypot(...vector);
  return vector.map((value) => value / norm);
}

/** The rejection is a FaceServiceError with this status and code. */
function failsWith(status: number, code: string) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof FaceServiceError, String(error));
    assert.deepEqual([error.status, error.code], [status, code], error.message);
    assert.ok(error.requestId, "the service's request id comes with every error");
    return true;
  };
}

test("collections: create, get, list, delete; a name taken is 409 collection_exists", async () => {
  const name = fresh("lifecycle");
  const created = await client.createCollection(name, { threshold: 0.5 });
  assert.deepEqual([created.name, created.model, created.dimension, created.threshold], [name, FAKE_MODEL, 512, 0.5]);
  assert.deepEqual([created.subjects, created.faces], [0, 0]);
  await assert.rejects(client.createCollection(name), failsWith(409, "collection_exists"));
  assert.equal((await client.getCollection(name)).threshold, 0.5);
  const { collections } = await client.listCollections();
  assert.ok(collections.some((collection) => collection.name === name));

  assert.equal(await client.deleteCollection(name), undefined);
  await assert.rejects(client.getCollection(name), failsWith(404, "collection_not_found"));
  await assert.rejects(client.deleteCollection(name), failsWith(404, "collection_not_found"));
  await assert.rejects(client.createCollection("../etc"), failsWith(400, "invalid_collection_name"));
});

test("enroll a photo, search finds it; the same photo again is a duplicate, not a copy", async () => {
  const name = fresh("enroll");
  await client.createCollection(name);
  const selfie = await readFile(join(photos, "yaoming.jpg"));
  const first = await client.enrollFace(name, "yao", new Blob([selfie]));
  assert.equal(first.duplicate, false);
  assert.equal(first.external_id, "yao");
  assert.equal(first.model, FAKE_MODEL);
  assert.equal(first.bbox?.length, 4);
  // The same bytes as base64: recognised as the same image.
  const again = await client.enrollFace(name, "yao", { base64: selfie.toString("base64") });
  assert.equal(again.duplicate, true);
  assert.equal(again.face_id, first.face_id);
  await client.enrollFace(name, "team", await photo("players.jpg"), { face: "largest", minFaceSize: 10, minConfidence: 0.5 });

  const found = await client.searchCollection(name, selfie, { topK: 2 });
  assert.deepEqual([found.collection, found.model, found.searched_faces], [name, FAKE_MODEL, 2]);
  assert.equal(found.results.length, 1);
  const [probe] = found.results;
  assert.ok(probe?.face, "a search by image says where each face is");
  assert.deepEqual(probe.matches.map((match) => match.external_id), ["yao", "team"]);
  assert.equal(probe.matches[0]?.face_id, first.face_id);
  assert.equal(probe.decision.match, true);
  assert.equal(probe.decision.external_id, "yao");
  assert.ok(Math.abs((probe.decision.similarity ?? 0) - 1) < 1e-4);

  const subject = await client.getSubject(name, "yao");
  assert.equal(subject.faces_count, 1);
  assert.equal(subject.faces[0]?.embedding, undefined);
  const withVectors = await client.getSubject(name, "yao", { includeEmbeddings: true });
  assert.equal(withVectors.faces[0]?.embedding?.length, 512);

  const same = await client.verifySubject(name, "yao", new Blob([selfie]));
  assert.deepEqual([same.match, same.face_id], [true, first.face_id]);
  const other = await client.verifySubject(name, "team", new Blob([selfie]));
  assert.equal(other.match, false);
  await client.deleteCollection(name);
});

test("by embedding: the collection's model is enforced (409 model_mismatch)", async () => {
  const name = fresh("vectors");
  await client.createCollection(name);
  const vector = unitVector(1);
  await assert.rejects(
    client.enrollFace(name, "alice", { embedding: vector, model: "buffalo_l:12345678" }),
    failsWith(409, "model_mismatch"),
  );
  const enrolled = await client.enrollFace(name, "alice", { embedding: vector, model: FAKE_MODEL });
  assert.equal(enrolled.bbox, undefined, "no box: no image");
  assert.equal((await client.enrollFace(name, "alice", { embedding: vector, model: FAKE_MODEL })).duplicate, true);
  const found = await client.searchCollection(name, { embedding: vector, model: FAKE_MODEL });
  assert.equal(found.results[0]?.face, null);
  assert.equal(found.results[0]?.decision.external_id, "alice");
  await assert.rejects(
    client.searchCollection(name, { embedding: vector, model: "buffalo_l:12345678" }),
    failsWith(409, "model_mismatch"),
  );
  const verified = await client.verifySubject(name, "alice", { embedding: vector, model: FAKE_MODEL });
  assert.equal(verified.match, true);
  await client.deleteCollection(name);
});

test("errors carry the service's codes: 404s, 422 no_face and multiple_faces' kin, 400 for a bad id", async () => {
  const name = fresh("errors");
  await assert.rejects(client.enrollFace("no-such-collection", "x", await photo("yaoming.jpg")), failsWith(404, "collection_not_found"));
  await assert.rejects(client.searchCollection("no-such-collection", await photo("yaoming.jpg")), failsWith(404, "collection_not_found"));
  await client.createCollection(name);
  await assert.rejects(client.getSubject(name, "nobody"), failsWith(404, "subject_not_found"));
  await assert.rejects(client.deleteSubject(name, "nobody"), failsWith(404, "subject_not_found"));
  await assert.rejects(client.deleteFace(name, "0123456789abcdef0123456789abcdef"), failsWith(404, "face_not_found"));
  await assert.rejects(client.deleteFace(name, "0123456789abcdef"), failsWith(400, "invalid_face_id"));
  await assert.rejects(client.enrollFace(name, "x", await photo("blank.png")), failsWith(422, "no_face"));
  await assert.rejects(client.enrollFace(name, "x", await photo("yaoming.jpg"), { minFaceSize: 5000 }), failsWith(422, "face_too_small"));
  await assert.rejects(client.enrollFace(name, "x", await photo("yaoming.jpg"), { minConfidence: 1 }), failsWith(422, "low_confidence"));
  // An id is one path segment: the client escapes it, the service refuses what it may not hold.
  await assert.rejects(client.enrollFace(name, "has space", await photo("yaoming.jpg")), failsWith(400, "invalid_external_id"));
  // No face in the photo is no result, not an error.
  assert.deepEqual((await client.searchCollection(name, await photo("blank.png"))).results, []);
  await client.deleteCollection(name);
});

test("ids a URL normaliser would rewrite are refused before anything is sent", async () => {
  const sent: string[] = [];
  const spy = new FaceServiceClient({
    baseUrl: url,
    apiKey,
    fetch: async (input, init) => {
      sent.push(String(input));
      return fetch(input, init);
    },
  });
  const name = fresh("dots");
  await spy.createCollection(name);
  const enrolled = await spy.enrollFace(name, "alice", { embedding: unitVector(3), model: FAKE_MODEL });
  sent.length = 0;
  const refused = (code: string) => (error: unknown): boolean => {
    assert.ok(error instanceof FaceServiceError, String(error));
    assert.deepEqual([error.status, error.code, error.requestId, error.retryable], [400, code, undefined, false]);
    return true;
  };
  const vector = { embedding: unitVector(4), model: FAKE_MODEL };
  for (const id of ["..", ".", "", "a/b", "a?b", "a#b", "a%2Fb", "a\\b", "a\nb"]) {
    await assert.rejects(spy.deleteSubject(name, id), refused("invalid_external_id"));
    await assert.rejects(spy.getSubject(name, id), refused("invalid_external_id"));
    await assert.rejects(spy.enrollFace(name, id, vector), refused("invalid_external_id"));
    await assert.rejects(spy.verifySubject(name, id, vector), refused("invalid_external_id"));
    await assert.rejects(spy.deleteFace(name, id), refused("invalid_face_id"));
    await assert.rejects(spy.deleteCollection(id), refused("invalid_collection_name"));
    await assert.rejects(spy.getCollection(id), refused("invalid_collection_name"));
    await assert.rejects(spy.searchCollection(id, vector), refused("invalid_collection_name"));
    await assert.rejects(spy.importCollection(id, "{}"), refused("invalid_collection_name"));
  }
  assert.deepEqual(sent, [], "nothing was sent");
  // What fetch itself makes of "/subjects/..": the collection's path with a trailing slash, which the
  // service answers 404 (it used to route it as the collection, and delete it).
  const normalised = await fetch(`${url}/collections/${name}/subjects/..`, {
    method: "DELETE",
    headers: { Authorization: `Bearer ${apiKey}` },
  });
  assert.equal(new URL(normalised.url).pathname, `/collections/${name}/`);
  assert.equal(normalised.status, 404);
  assert.equal((await client.getCollection(name)).faces, 1);
  assert.equal((await client.deleteFace(name, enrolled.face_id)).external_id, "alice");
  await client.deleteCollection(name);
});

test("listSubjects pages with its cursor; iterateSubjects walks every page", async () => {
  const name = fresh("pages");
  await client.createCollection(name);
  const ids = ["ann", "bea", "cid", "dov", "eve"];
  for (const [index, id] of ids.entries()) await client.enrollFace(name, id, { embedding: unitVector(index + 10), model: FAKE_MODEL });

  const first = await client.listSubjects(name, { limit: 2 });
  assert.deepEqual(first.subjects.map((subject) => subject.external_id), ["ann", "bea"]);
  assert.equal(first.next, "bea");
  const second = await client.listSubjects(name, { limit: 2, after: first.next ?? undefined });
  assert.deepEqual(second.subjects.map((subject) => subject.external_id), ["cid", "dov"]);

  let requests = 0;
  const counting = new FaceServiceClient({
    baseUrl: url,
    apiKey,
    fetch: (input, init) => {
      requests += 1;
      return fetch(input, init);
    },
  });
  const walked: string[] = [];
  for await (const subject of counting.iterateSubjects(name, { limit: 2 })) {
    assert.equal(subject.faces, 1);
    walked.push(subject.external_id);
  }
  assert.deepEqual(walked, ids);
  assert.equal(requests, 3);
  await client.deleteCollection(name);
});

test("export streams JSON lines; importing them (as a stream, or line by line) copies the collection", async () => {
  const name = fresh("source");
  const copy = fresh("copy");
  await client.createCollection(name, { threshold: 0.45 });
  await client.enrollFace(name, "yao", await photo("yaoming.jpg"));
  await client.enrollFace(name, "team", await photo("players.jpg"));
  await client.enrollFace(name, "team", { embedding: unitVector(3), model: FAKE_MODEL });

  const lines: unknown[] = [];
  for await (const line of await client.exportCollection(name)) lines.push(JSON.parse(line));
  assert.equal(lines.length, 4);
  assert.deepEqual(lines[0], { type: "collection", name, model: FAKE_MODEL, dimension: 512, threshold: 0.45, format: 1 });
  assert.ok(lines.slice(1).every((line) => (line as { type: string }).type === "face"));

  // The export's bytes, piped into the import as they arrive (a streamed request body).
  const exported = await client.exportCollection(name);
  assert.deepEqual(await client.importCollection(copy, exported.body), { collection: copy, imported: 3 });
  const copied = await client.getCollection(copy);
  assert.deepEqual([copied.model, copied.threshold, copied.subjects, copied.faces], [FAKE_MODEL, 0.45, 2, 3]);
  const found = await client.searchCollection(copy, await photo("yaoming.jpg"));
  assert.equal(found.results[0]?.decision.external_id, "yao");

  // Line by line (the export object itself), and again: nothing is stored twice.
  assert.equal((await client.importCollection(copy, await client.exportCollection(name))).imported, 0);
  // The whole export at once, as text, into a collection of another model: refused.
  const text = (lines as object[]).map((line) => JSON.stringify(line)).join("\n").replace(FAKE_MODEL, "buffalo_l:12345678");
  await assert.rejects(client.importCollection(copy, text), failsWith(409, "model_mismatch"));
  await assert.rejects(client.importCollection(copy, ""), failsWith(400, "invalid_import"));
  await assert.rejects(client.exportCollection("no-such-collection"), failsWith(404, "collection_not_found"));
  await client.deleteCollection(name);
  await client.deleteCollection(copy);
});

test("delete a face, then a subject: gone, and 404 after", async () => {
  const name = fresh("forget");
  await client.createCollection(name);
  const a = await client.enrollFace(name, "ann", { embedding: unitVector(20), model: FAKE_MODEL });
  await client.enrollFace(name, "ann", { embedding: unitVector(21), model: FAKE_MODEL });
  await client.enrollFace(name, "bob", { embedding: unitVector(22), model: FAKE_MODEL });

  assert.deepEqual(await client.deleteFace(name, a.face_id), { face_id: a.face_id, external_id: "ann" });
  assert.equal((await client.getSubject(name, "ann")).faces_count, 1);
  await assert.rejects(client.deleteFace(name, a.face_id), failsWith(404, "face_not_found"));

  assert.deepEqual(await client.deleteSubject(name, "ann"), { external_id: "ann", deleted_faces: 1 });
  await assert.rejects(client.getSubject(name, "ann"), failsWith(404, "subject_not_found"));
  const search = await client.searchCollection(name, { embedding: unitVector(21), model: FAKE_MODEL });
  assert.deepEqual(search.results[0]?.matches.map((match) => match.external_id), ["bob"]);
  assert.equal((await client.getCollection(name)).faces, 1);
  await client.deleteCollection(name);
});

test("retries: an enrollment whose answer was lost is sent again and answers the same face; a streamed import is not", async () => {
  const name = fresh("retry");
  await client.createCollection(name);
  let calls = 0;
  // The request reaches the service, but the connection drops before the answer is read.
  const losesFirstAnswer: typeof fetch = async (input, init) => {
    calls += 1;
    const response = await fetch(input, init);
    if (calls === 1) {
      await response.body?.cancel();
      throw new TypeError("fetch failed", { cause: { code: "ECONNRESET" } });
    }
    return response;
  };
  const retrying = new FaceServiceClient({ baseUrl: url, apiKey, fetch: losesFirstAnswer });
  const enrolled = await retrying.enrollFace(name, "ann", await photo("yaoming.jpg"));
  assert.equal(calls, 2);
  assert.equal(enrolled.duplicate, true, "the first attempt stored it; the retry found it");
  assert.equal((await client.getCollection(name)).faces, 1);

  let attempts = 0;
  const failing: typeof fetch = async () => {
    attempts += 1;
    throw new TypeError("fetch failed", { cause: { code: "ECONNRESET" } });
  };
  const unlucky = new FaceServiceClient({ baseUrl: url, apiKey, fetch: failing });
  const exported = await client.exportCollection(name);
  await assert.rejects(unlucky.importCollection(name, exported.body), { code: "network_error" });
  assert.equal(attempts, 1, "a stream cannot be sent twice");
  await exported.body.cancel();
  await assert.rejects(unlucky.importCollection(name, "{}"), { code: "network_error" });
  assert.equal(attempts, 4, "a body held whole is retried");
  await client.deleteCollection(name);
});

test("quality: enrollment refuses a low face with its reasons unless told; search skips faces under minQuality", async () => {
  const name = fresh("quality");
  await client.createCollection(name);
  const dark = await photo("dark.png"); // the fake's face: dark and flat, LOW_BRIGHTNESS
  const refused = (error: unknown): boolean => {
    assert.ok(failsWith(422, "low_quality_face")(error));
    assert.deepEqual((error as FaceServiceError).reasons, ["LOW_BRIGHTNESS"]);
    return true;
  };
  await assert.rejects(client.enrollFace(name, "ann", dark), refused); // "medium", the service's default
  await assert.rejects(client.enrollFace(name, "ann", dark, { quality: "high" }), refused);
  assert.equal((await client.getCollection(name)).faces, 0);
  const enrolled = await client.enrollFace(name, "ann", dark, { quality: "none" });
  assert.equal(enrolled.duplicate, false);

  const every = await client.searchCollection(name, dark);
  assert.equal(every.results[0]?.decision.external_id, "ann");
  assert.equal(every.results[0]?.face?.quality?.level, "low");
  assert.deepEqual(every.skipped, []);
  const filtered = await client.searchCollection(name, dark, { minQuality: "medium" });
  assert.deepEqual(filtered.results, []);
  assert.deepEqual(filtered.skipped?.[0]?.quality?.reasons, ["LOW_BRIGHTNESS"]);
  assert.deepEqual(filtered.skipped?.[0]?.bbox, every.results[0]?.face?.bbox);
  await client.deleteCollection(name);
});

test("real models: Yao Ming, enrolled from his photo, is found in the team photo", async () => {
  assert.ok(realUrl, "FACE_SERVICE_REAL_URL must point at a server on the real models");
  const real = new FaceServiceClient({ baseUrl: realUrl, apiKey });
  const name = fresh("players");
  await real.createCollection(name);
  const enrolled = await real.enrollFace(name, "yao-ming", await photo("yaoming.jpg"), { minFaceSize: 40 });
  assert.equal(enrolled.duplicate, false);
  assert.notEqual(enrolled.model, FAKE_MODEL);
  await assert.rejects(real.enrollFace(name, "group", await photo("t1.jpg")), failsWith(422, "multiple_faces"));
  // His photo blurred: low quality (LOW_SHARPNESS), refused at the default floor, taken at "none".
  await assert.rejects(real.enrollFace(name, "blurred", await photo("blurred.png")), (error: unknown) => {
    assert.ok(failsWith(422, "low_quality_face")(error));
    assert.deepEqual((error as FaceServiceError).reasons, ["LOW_SHARPNESS"]);
    return true;
  });
  assert.equal((await real.enrollFace(name, "blurred", await photo("blurred.png"), { quality: "none" })).duplicate, false);
  await real.deleteSubject(name, "blurred");

  const team = await real.searchCollection(name, await photo("players.jpg"), { topK: 1 });
  assert.ok(team.results.length > 5, "every face of the team is searched");
  const matched = team.results.filter((result) => result.decision.match);
  assert.deepEqual(matched.map((result) => result.decision.external_id), ["yao-ming"]);
  const [x1, y1, x2, y2] = matched[0]?.face?.bbox as [number, number, number, number];
  assert.ok(x1 < 740 && 740 < x2 && y1 < 180 && 180 < y2, "the match is #13 in the top row");
  assert.ok((matched[0]?.decision.similarity ?? 0) > 0.5);
  await real.deleteCollection(name);
});
