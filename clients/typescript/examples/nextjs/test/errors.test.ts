// lib/errors.ts: what the browser is told for each failure. Run by `npm test` (Node's test runner).
import assert from "node:assert/strict";
import { test } from "node:test";

import { FaceServiceError } from "@face-service/client";

import {
  NameProblem,
  NotConfigured,
  PhotoProblem,
  SERVICE_UNAVAILABLE,
  aboutPhoto,
  errorResponse,
  toBrowserError,
} from "../lib/errors.js";

const fromService = (status: number, code: string, message = "the service's own words", retryAfterSeconds?: number) =>
  new FaceServiceError(message, { status, code, retryAfterSeconds });

test("the photo's fault is a 4xx with a message for the person, and the service's code", () => {
  const cases: [FaceServiceError | PhotoProblem, number, string][] = [
    [fromService(422, "invalid_image"), 422, "invalid_image"],
    [fromService(415, "unsupported_image_format"), 415, "unsupported_image_format"],
    [fromService(413, "image_too_large"), 413, "image_too_large"],
    [fromService(413, "request_too_large"), 413, "request_too_large"],
    [new PhotoProblem("no_face"), 422, "no_face"],
    [new PhotoProblem("missing_photo"), 400, "missing_photo"],
    [fromService(422, "no_face"), 422, "no_face"],
    [fromService(422, "multiple_faces"), 422, "multiple_faces"],
    [fromService(422, "face_too_small"), 422, "face_too_small"],
    [fromService(422, "low_confidence"), 422, "low_confidence"],
    [fromService(422, "low_quality_face"), 422, "low_quality_face"],
  ];
  for (const [error, status, code] of cases) {
    const mapped = toBrowserError(error, "req-1");
    assert.equal(mapped.status, status, code);
    assert.equal(mapped.body.code, code);
    assert.equal(mapped.body.requestId, "req-1");
    assert.notEqual(mapped.body.error, SERVICE_UNAVAILABLE);
    assert.doesNotMatch(mapped.body.error, /service's own words/);
  }
});

test("the name's fault and the collection's limits are a 4xx with a message for the person", () => {
  const cases: [FaceServiceError | NameProblem, number, string, RegExp][] = [
    [new NameProblem("missing_name"), 400, "missing_name", /Type a name/],
    [new NameProblem("name_too_long"), 400, "name_too_long", /too long/],
    [fromService(400, "invalid_external_id"), 400, "invalid_external_id", /name cannot be used/],
    [fromService(404, "subject_not_found"), 404, "subject_not_found", /No one is enrolled/],
    [fromService(404, "face_not_found"), 404, "face_not_found", /not enrolled/],
    [fromService(409, "subject_face_limit"), 409, "subject_face_limit", /as many photos/],
    [fromService(409, "subject_limit"), 409, "subject_limit", /full/],
    [fromService(409, "collection_face_limit"), 409, "collection_face_limit", /full/],
    [fromService(409, "people_named_differently"), 409, "people_named_differently", /another name/],
  ];
  for (const [error, status, code, message] of cases) {
    const mapped = toBrowserError(error, "req-10");
    assert.deepEqual([mapped.status, mapped.body.code, mapped.body.requestId], [status, code, "req-10"]);
    assert.match(mapped.body.error, message);
  }
});

test("the service's configuration is a 502 with the generic message, never the service's text", () => {
  const cases = [
    fromService(401, "unauthorized", "Missing or invalid API key: send 'Authorization: Bearer <key>'"),
    fromService(403, "forbidden", "This API key may not do that"),
    fromService(500, "internal_error", "a bug, see request_id"),
    fromService(502, "http_502", "face-service answered 502"),
    fromService(400, "invalid_request", "embedding_b: expected an array"), // this app's mistake, not the photo's
    fromService(404, "not_found"),
    fromService(415, "unsupported_media_type"),
    fromService(422, "invalid_embedding"),
    // The app's collection (FACE_COLLECTION) missing, misnamed, of another model, or one too many.
    fromService(404, "collection_not_found"),
    fromService(400, "invalid_collection_name"),
    fromService(409, "model_mismatch"),
    fromService(409, "collection_exists"),
    fromService(409, "collection_limit"),
  ];
  for (const error of cases) {
    const mapped = toBrowserError(error, "req-2");
    assert.equal(mapped.status, 502, error.code);
    assert.deepEqual(mapped.body, { error: SERVICE_UNAVAILABLE, code: "service_unavailable", requestId: "req-2" });
  }
});

test("the service's availability is a 503 with the generic message, and Retry-After when given", () => {
  const cases: [FaceServiceError, number | undefined][] = [
    [fromService(503, "overloaded", "busy", 1), 1],
    [fromService(429, "rate_limited", "slow down", 7), 7],
    [fromService(0, "timeout", "face-service did not answer within 15000 ms"), undefined],
    [fromService(0, "network_error", "face-service unreachable: TypeError: fetch failed (ECONNREFUSED)"), undefined],
    [fromService(503, "store_unavailable", "the gallery's database at postgresql://user:secret@db is down"), undefined],
  ];
  for (const [error, retryAfterSeconds] of cases) {
    const mapped = toBrowserError(error, "req-3");
    assert.equal(mapped.status, 503, error.code);
    assert.deepEqual(mapped.body, { error: SERVICE_UNAVAILABLE, code: "service_unavailable", requestId: "req-3" });
    assert.equal(mapped.retryAfterSeconds, retryAfterSeconds);
  }
  const unset = toBrowserError(new NotConfigured("Set PYTHON_AI_SERVICE_URL and PYTHON_AI_SERVICE_API_KEY"), "req-4");
  assert.equal(unset.status, 503);
  assert.equal(unset.body.error, SERVICE_UNAVAILABLE);
});

test("anything else is a 500 that says nothing of the cause", () => {
  const mapped = toBrowserError(new TypeError("Cannot read properties of undefined (reading 'embedding')"), "req-5");
  assert.equal(mapped.status, 500);
  assert.equal(mapped.body.code, "internal_error");
  assert.doesNotMatch(mapped.body.error, /undefined|embedding/);
});

test("aboutPhoto names the photo in a photo problem, and lets other errors through", async () => {
  const unreadable = await aboutPhoto("the second photo", () => Promise.reject(fromService(422, "invalid_image")))
    .then(() => assert.fail("resolved"), (error: unknown) => toBrowserError(error, "req-6"));
  assert.equal(unreadable.status, 422);
  assert.match(unreadable.body.error, /^The second photo: /);
  const noFace = await aboutPhoto("the first photo", () => Promise.reject(new PhotoProblem("no_face")))
    .then(() => assert.fail("resolved"), (error: unknown) => toBrowserError(error, "req-7"));
  assert.equal(noFace.body.code, "no_face");
  assert.match(noFace.body.error, /^The first photo: No face/);
  const key = fromService(401, "unauthorized");
  await assert.rejects(aboutPhoto("the first photo", () => Promise.reject(key)), (error: unknown) => error === key);
  assert.equal(await aboutPhoto("the first photo", () => Promise.resolve(42)), 42);
});

test("errorResponse: status, JSON body, Retry-After; the full error goes to the server's log only", async (t) => {
  const logged: unknown[][] = [];
  t.mock.method(console, "error", (...args: unknown[]) => logged.push(args));
  const response = errorResponse(fromService(503, "overloaded", "every worker is busy", 2), "req-8");
  assert.equal(response.status, 503);
  assert.equal(response.headers.get("retry-after"), "2");
  assert.deepEqual(await response.json(), { error: SERVICE_UNAVAILABLE, code: "service_unavailable", requestId: "req-8" });
  assert.equal(logged.length, 1);
  assert.match(String(logged[0]?.[0]), /req-8/);
  assert.match(String(logged[0]?.[1]), /every worker is busy/);

  const photo = errorResponse(fromService(415, "unsupported_image_format"), "req-9");
  assert.equal(photo.status, 415);
  assert.equal(photo.headers.get("retry-after"), null);
  assert.equal(logged.length, 1, "a photo problem is not the server's to log");
});
