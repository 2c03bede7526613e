// lib/settings.ts: the service's URL and key from the seed's names, or from FACE_SERVICE_*.
import assert from "node:assert/strict";
import { test } from "node:test";

import { serviceSettings } from "../lib/settings.js";

const SERVICE_URL = "http://face-service.internal:8000";

test("the original README's names configure the app", () => {
  const env = { PYTHON_AI_SERVICE_URL: SERVICE_URL, PYTHON_AI_SERVICE_API_KEY: "seed-key" };
  assert.deepEqual(serviceSettings(env), { baseUrl: SERVICE_URL, apiKey: "seed-key" });
});

test("FACE_SERVICE_URL and FACE_SERVICE_API_KEY do too, and the original names win over them", () => {
  const aliases = { FACE_SERVICE_URL: SERVICE_URL, FACE_SERVICE_API_KEY: "alias-key" };
  assert.deepEqual(serviceSettings(aliases), { baseUrl: SERVICE_URL, apiKey: "alias-key" });
  const both = { ...aliases, PYTHON_AI_SERVICE_URL: "http://seed:8000", PYTHON_AI_SERVICE_API_KEY: "seed-key" };
  assert.deepEqual(serviceSettings(both), { baseUrl: "http://seed:8000", apiKey: "seed-key" });
  const mixed = { PYTHON_AI_SERVICE_URL: SERVICE_URL, FACE_SERVICE_API_KEY: "alias-key" };
  assert.deepEqual(serviceSettings(mixed), { baseUrl: SERVICE_URL, apiKey: "alias-key" });
});

test("without a SERVICE_URL or a key (or with a blank one) the app is not configured", () => {
  assert.equal(serviceSettings({}), undefined);
  assert.equal(serviceSettings({ PYTHON_AI_SERVICE_URL: SERVICE_URL }), undefined);
  assert.equal(serviceSettings({ FACE_SERVICE_API_KEY: "alias-key" }), undefined);
  assert.equal(serviceSettings({ PYTHON_AI_SERVICE_URL: " ", PYTHON_AI_SERVICE_API_KEY: "seed-key" }), undefined);
  const padded = { PYTHON_AI_SERVICE_URL: ` ${SERVICE_URL}\n`, PYTHON_AI_SERVICE_API_KEY: " seed-key " };
  assert.deepEqual(serviceSettings(padded), { baseUrl: SERVICE_URL, apiKey: "seed-key" });
});
