// Scoped API keys through the client, against the fake-backend server that the service's test suite
// starts (tests/e2e/test_typescript_client.py) with a keys file: FACE_SERVICE_SCOPED_KEY may only `search`
// the collection FACE_SERVICE_SCOPED_COLLECTION, as a Next.js server that only identifies people would.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { FaceServiceClient, FaceServiceError } from "../src/index.js";

const url = process.env.FACE_SERVICE_URL ?? "";
const apiKey = process.env.FACE_SERVICE_KEY ?? "";
const scopedKey = process.env.FACE_SERVICE_SCOPED_KEY ?? "";
const collection = process.env.FACE_SERVICE_SCOPED_COLLECTION ?? "";
const FAKE_MODEL = "fake:00000000";
const admin = new FaceServiceClient({ baseUrl: url, apiKey });
const searchOnly = new FaceServiceClient({ baseUrl: url, apiKey: scopedKey });

function unitVector(seed: number): number[] {
  const vector = Array.from({ length: 512 }, (_, index) => Math.sin(seed * 7919 + index * (seed + 1)));
  const norm = Math.hypot(...vector);
  return vector.map((value) => value / norm);
}

/** A 403 forbidden_scope, typed, not retryable, naming what the key lacks and never the key. */
function forbidden(lacking: string) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof FaceServiceError, String(error));
    assert.deepEqual([error.status, error.code, error.retryable], [403, "forbidden_scope", false], error.message);
    assert.ok(error.message.includes(lacking), error.message);
    assert.ok(!error.message.includes(scopedKey));
    assert.ok(error.requestId);
    return true;
  };
}

test("a key scoped to searching one collection searches it, and is refused everything else with 403", async () => {
  assert.ok(scopedKey && collection, "FACE_SERVICE_SCOPED_KEY and FACE_SERVICE_SCOPED_COLLECTION are set");
  const other = `other-${randomUUID().slice(0, 8)}`;
  const probe = { embedding: unitVector(1), model: FAKE_MODEL };
  await admin.createCollection(collection);
  await admin.createCollection(other);
  try {
    await admin.enrollFace(collection, "ada", probe);
    await admin.enrollFace(other, "bob", probe);

    const found = await searchOnly.searchCollection(collection, probe);
    assert.equal(found.results[0]?.decision.external_id, "ada");
    assert.equal((await searchOnly.verifySubject(collection, "ada", probe)).match, true);
    const { collections } = await searchOnly.listCollections();
    assert.deepEqual(collections.map((c) => c.name), [collection]); // only what its scope covers
    const health = await searchOnly.health();
    assert.deepEqual(health.gallery?.collections.map((c) => c.name), [collection]);

    await assert.rejects(searchOnly.searchCollection(other, probe), forbidden(`collection '${other}'`));
    await assert.rejects(searchOnly.enrollFace(collection, "eve", probe), forbidden("'enroll'"));
    await assert.rejects(searchOnly.deleteSubject(collection, "ada"), forbidden("'manage'"));
    await assert.rejects(searchOnly.deleteCollection(collection), forbidden("'manage'"));
    await assert.rejects(searchOnly.exportCollection(collection), forbidden("'manage'"));
    await assert.rejects(searchOnly.createCollection(`new-${randomUUID().slice(0, 8)}`), forbidden("'manage'"));
    await assert.rejects(searchOnly.getSubject(collection, "ada", { includeEmbeddings: true }), forbidden("'manage'"));
    await assert.rejects(searchOnly.compareFaces({ embedding_a: probe.embedding, embedding_b: probe.embedding }), forbidden("'faces'"));
    // Nothing it was refused happened.
    assert.equal((await admin.getSubject(collection, "ada")).faces_count, 1);
    const wrong = new FaceServiceClient({ baseUrl: url, apiKey: `${scopedKey}x` });
    await assert.rejects(wrong.searchCollection(collection, probe), { status: 401, code: "unauthorized" });
  } finally {
    await admin.deleteCollection(collection);
    await admin.deleteCollection(other);
  }
});
