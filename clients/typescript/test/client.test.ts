// Run by the service's test suite (tests/e2e/test_typescript_client.py), which starts two live servers:
// FACE_SERVICE_URL on the fake backend and FACE_SERVICE_REAL_URL on the real models.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";

import { FaceServiceClient, FaceServiceError } from "../src/index.js";

const url = process.env.FACE_SERVICE_URL ?? "";
const realUrl = process.env.FACE_SERVICE_REAL_URL ?? "";
const apiKey = process.env.FACE_SERVICE_KEY ?? "";
const photos = process.env.FACE_SERVICE_PHOTOS ?? "";
const photo = async (name: string): Promise<Blob> => new Blob([await readFile(join(photos, name))]);
const client = new FaceServiceClient({ baseUrl: url, apiKey });

test("health reports the backend and model", async () => {
  const health = await client.health();
  assert.equal(health.status, "healthy");
  assert.equal(health.backend, "fake");
  assert.equal(health.embedding_size, 512);
});

test("multipart and base64 give the same answer", async () => {
  const bytes = await readFile(join(photos, "yaoming.jpg"));
  const asBlob = await client.verifyFace(new Blob([bytes]));
  const asBase64 = await client.verifyFace({ base64: bytes.toString("base64") });
  assert.equal(asBlob.face_detected, true);
  assert.deepEqual(asBlob, asBase64);
});

test("extractEmbedding returns 512 numbers, the model, and every face on request", async () => {
  const result = await client.extractEmbedding(await photo("t1.jpg"), { allFaces: true });
  assert.equal(result.face_detected, true);
  assert.equal(result.embedding?.length, 512);
  assert.equal(result.model, "fake:00000000");
  assert.equal(result.faces?.length, result.faces_count);
});

test("batchExtract keeps going past a bad image", async () => {
  const result = await client.batchExtract([await photo("yaoming.jpg"), new Blob([new TextEncoder().encode("not an image")])]);
  assert.equal(result.total, 2);
  assert.equal(result.successful, 1);
  assert.equal(result.results[1]?.code, "unsupported_image_format");
});

test("compareFaces one to one and one to many", async () => {
  const { embedding } = await client.extractEmbedding(await photo("yaoming.jpg"));
  assert.ok(embedding);
  const same = await client.compareFaces({ embedding_a: embedding, embedding_b: embedding });
  assert.ok(Math.abs(same.similarity - 1) < 1e-5);
  assert.equal(same.match, true);
  const other = embedding.map((value, index) => (index % 2 ? value : -value));
  const many = await client.compareFaces({ embedding_a: embedding, candidates: [other, embedding] });
  assert.equal(many.best_index, 1);
  assert.equal(many.results?.length, 2);
});

test("errors are typed and carry the service's code", async () => {
  await assert.rejects(client.extractEmbedding(new Blob([new TextEncoder().encode("hello")])), (error: unknown) => {
    assert.ok(error instanceof FaceServiceError);
    assert.equal(error.status, 415);
    assert.equal(error.code, "unsupported_image_format");
    assert.equal(error.retryable, false);
    return true;
  });
  const wrongKey = new FaceServiceClient({ baseUrl: url, apiKey: "wrong-key-123456" });
  await assert.rejects(wrongKey.verifyFace(await photo("yaoming.jpg")), { name: "FaceServiceError", code: "unauthorized" });
  await assert.rejects(client.compareFaces({ embedding_a: [1, 2, 3], embedding_b: [1, 2, 3] }), {
    code: "invalid_embedding",
    field: "embedding_a",
  });
});

test("503 is retried after Retry-After, 4xx is not", async () => {
  let calls = 0;
  const flaky: typeof fetch = async (input, init) => {
    calls += 1;
    if (calls === 1) {
      return new Response(JSON.stringify({ error: "busy", code: "overloaded" }), {
        status: 503,
        headers: { "Retry-After": "1", "Content-Type": "application/json" },
      });
    }
    return fetch(input, init);
  };
  const retrying = new FaceServiceClient({ baseUrl: url, apiKey, fetch: flaky });
  const began = Date.now();
  const health = await retrying.health();
  assert.equal(health.status, "healthy");
  assert.equal(calls, 2);
  assert.ok(Date.now() - began >= 900, "waited for Retry-After");

  let attempts = 0;
  const counting: typeof fetch = async (input, init) => {
    attempts += 1;
    return fetch(input, init);
  };
  const once = new FaceServiceClient({ baseUrl: url, apiKey: "wrong-key-123456", fetch: counting });
  await assert.rejects(once.health().then(() => once.verifyFace({ base64: "AAAA" })), { code: "unauthorized" });
  assert.equal(attempts, 2); // health, then one verifyFace: no retry of a 401
});

test("a slow service times out with a clear code, and the timeout is not retried", async () => {
  // A server that never answers. (The timer stands in for the open socket a real fetch would hold:
  // AbortSignal.timeout's own timer does not keep Node's event loop alive.)
  let calls = 0;
  const hanging: typeof fetch = (_input, init) =>
    new Promise((_resolve, reject) => {
      calls += 1;
      const socket = setTimeout(() => undefined, 10_000);
      init?.signal?.addEventListener("abort", () => {
        clearTimeout(socket);
        reject(init.signal?.reason);
      });
    });
  const impatient = new FaceServiceClient({ baseUrl: url, apiKey, timeoutMs: 50, fetch: hanging });
  await assert.rejects(impatient.health({ requestId: "slow-1" }), (error: unknown) => {
    assert.ok(error instanceof FaceServiceError);
    assert.equal(error.code, "timeout");
    assert.equal(error.status, 0);
    assert.equal(error.retryable, true); // advice to the caller: the client did not retry it
    assert.equal(error.requestId, "slow-1");
    return true;
  });
  assert.equal(calls, 1);
});

test("a failed connection is retried with backoff, at most `retries` times", async () => {
  // A port that was free a moment ago: nothing listens there, a real fetch fails to connect.
  const nowhereUrl = await new Promise<string>((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(`http://127.0.0.1:${port}`));
    });
  });
  let calls = 0;
  const counting: typeof fetch = async (input, init) => {
    calls += 1;
    return fetch(input, init);
  };
  const nowhere = new FaceServiceClient({ baseUrl: nowhereUrl, apiKey, fetch: counting });
  const began = Date.now();
  await assert.rejects(nowhere.health(), (error: unknown) => {
    assert.ok(error instanceof FaceServiceError);
    assert.equal(error.code, "network_error");
    assert.equal(error.status, 0);
    assert.equal(error.retryable, true);
    assert.match(error.message, /ECONNREFUSED/);
    return true;
  });
  assert.equal(calls, 3); // the first attempt and 2 retries
  assert.ok(Date.now() - began >= 375, "backed off between attempts (0.25 s and 0.5 s, halved at most by jitter)");

  let dropped = 0;
  const dropsOnce: typeof fetch = async (input, init) => {
    dropped += 1;
    if (dropped === 1) throw new TypeError("fetch failed", { cause: { code: "ECONNRESET" } });
    return fetch(input, init);
  };
  const recovering = new FaceServiceClient({ baseUrl: url, apiKey, fetch: dropsOnce });
  assert.equal((await recovering.health()).status, "healthy");
  assert.equal(dropped, 2);

  calls = 0;
  const noRetries = new FaceServiceClient({ baseUrl: nowhereUrl, apiKey, fetch: counting, retries: 0 });
  await assert.rejects(noRetries.health(), { code: "network_error" });
  assert.equal(calls, 1);
});

test("refuses to run in a browser", () => {
  (globalThis as { window?: unknown }).window = {};
  try {
    assert.throws(() => new FaceServiceClient({ baseUrl: url, apiKey }), /server-side only/);
  } finally {
    delete (globalThis as { window?: unknown }).window;
  }
});

test("real models: Yao Ming is found in the team photo", async () => {
  assert.ok(realUrl, "FACE_SERVICE_REAL_URL must point at a server on the real models");
  const real = new FaceServiceClient({ baseUrl: realUrl, apiKey });
  const selfie = await real.extractEmbedding(await photo("yaoming.jpg"));
  const team = await real.extractEmbedding(await photo("players.jpg"), { allFaces: true });
  assert.ok(selfie.embedding && team.faces);
  const candidates = team.faces.map((face) => face.embedding ?? []);
  const result = await real.compareFaces({
    embedding_a: selfie.embedding,
    candidates,
    model_a: selfie.model ?? undefined,
    model_b: team.model ?? undefined,
  });
  const best = team.faces[result.best_index ?? -1];
  assert.ok(best);
  const [x1, y1, x2, y2] = best.bbox as [number, number, number, number];
  assert.ok(x1 < 740 && 740 < x2 && y1 < 180 && 180 < y2, "the best match is #13 in the top row");
  assert.equal(result.match, true);
});
