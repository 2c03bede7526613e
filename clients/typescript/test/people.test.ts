// People (docs/api.md, "People") through the client, against the live servers that
// tests/e2e/test_typescript_client.py starts: FACE_SERVICE_URL on the fake backend, FACE_SERVICE_REAL_URL
// on the real models (the bundled photos: Yao Ming is in the team photo and in his selfie).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";

import { type ClusterJobResponse, FaceServiceClient, FaceServiceError } from "../src/index.js";

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

test("people: a person id that is not 32 hex is refused before sending; an unknown one is the service's 404", async () => {
  const client = new FaceServiceClient({ baseUrl: url, apiKey });
  const valid = "0".repeat(32);
  for (const id of ["", ".", "..", "a/b", "A".repeat(32), "0".repeat(31), `${"0".repeat(31)}/`]) {
    const refused = failsWith(400, "invalid_person_id", false);
    await assert.rejects(client.getPerson("any", id), refused);
    await assert.rejects(client.personPhotos("any", id), refused);
    await assert.rejects(client.namePerson("any", id, "someone"), refused);
    await assert.rejects(client.mergePeople("any", id, valid), refused);
    await assert.rejects(client.mergePeople("any", valid, id), refused);
    await assert.rejects(client.splitPerson("any", id, [valid]), refused);
    await assert.rejects(client.notThisPerson("any", id, valid), refused);
    await assert.rejects(client.deletePerson("any", id), refused);
  }
  await assert.rejects(client.namePerson("any", valid, ".."), failsWith(400, "invalid_external_id", false));
  await assert.rejects(client.listPeople(".."), failsWith(400, "invalid_collection_name", false));
  await assert.rejects(client.startClustering(".."), failsWith(400, "invalid_collection_name", false));

  const name = fresh("people-ids");
  await client.createCollection(name);
  await assert.rejects(client.getPerson(name, valid), failsWith(404, "person_not_found"));
  await assert.rejects(client.deletePerson(name, valid), failsWith(404, "person_not_found"));
  await assert.rejects(client.clusteringStatus(name), failsWith(404, "clustering_not_started"));
  assert.deepEqual(await client.listPeople(name), { people: [], next: null });
  await client.deleteCollection(name);
});

test("real models: cluster the event's photos, Yao Ming is the one person seen twice; named, subject search finds him", async () => {
  assert.ok(realUrl, "FACE_SERVICE_REAL_URL must point at a server on the real models");
  const real = new FaceServiceClient({ baseUrl: realUrl, apiKey, timeoutMs: 60_000 });
  const name = fresh("people");
  await real.createCollection(name);
  for (const file of ["players.jpg", "t1.jpg", "gdp.jpg", "yaoming.jpg"]) await real.indexPhoto(name, file, await photo(file));

  const started = await real.startClustering(name);
  assert.equal(started.collection, name);
  assert.ok(["queued", "running", "done"].includes(started.state), started.state);
  let job: ClusterJobResponse = started;
  const deadline = Date.now() + 120_000;
  while (job.state !== "done" && job.state !== "failed") {
    assert.ok(Date.now() < deadline, `the re-cluster did not finish: ${JSON.stringify(job)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    job = await real.clusteringStatus(name);
    assert.ok(job.progress >= 0 && job.progress <= 1, String(job.progress));
  }
  assert.equal(job.state, "done", JSON.stringify(job));
  assert.equal(job.job_id, started.job_id, "the status is of the job started");
  assert.match(job.job_id, /^[0-9a-f]{32}$/);
  assert.equal(job.people, 1, "every other face is someone seen once");

  const people = [];
  for await (const person of real.iteratePeople(name, { limit: 1 })) people.push(person);
  assert.equal(people.length, 1);
  const [person] = people;
  assert.ok(person);
  assert.match(person.person_id, /^[0-9a-f]{32}$/);
  assert.equal(person.faces, 2);
  assert.equal(person.representative.bbox?.length, 4, "the representative face has its box to show");
  const inPhotos = await real.personPhotos(name, person.person_id);
  assert.deepEqual(inPhotos.photos.map((p) => p.photo_id), ["players.jpg", "yaoming.jpg"]);
  const detail = await real.getPerson(name, person.person_id);
  assert.equal(detail.faces.length, 2);

  const before = await real.searchCollection(name, await photo("yaoming.jpg"));
  assert.equal(before.results[0]?.decision.external_id, null, "nobody is named yet");
  const named = await real.namePerson(name, person.person_id, "yao-ming");
  assert.deepEqual([named.external_id, named.labelled_faces, named.person.person_id], ["yao-ming", 2, person.person_id]);
  const found = await real.searchCollection(name, await photo("yaoming.jpg"));
  assert.deepEqual([found.results[0]?.decision.match, found.results[0]?.decision.external_id], [true, "yao-ming"]);

  // Not this person: the selfie's face leaves him (he is left with the team photo's face) and, named
  // by the person's naming, leaves the subject too: an unlabelled photo face again.
  const selfieFace = detail.faces.find((face) => face.photo_id === "yaoming.jpg");
  assert.ok(selfieFace);
  const after = await real.notThisPerson(name, person.person_id, selfieFace.face_id);
  assert.deepEqual([after.face_id, after.person?.faces], [selfieFace.face_id, 1]);
  const teamFace = after.person?.representative.face_id;
  const subject = await real.getSubject(name, "yao-ming");
  assert.deepEqual(subject.faces.map((face) => face.face_id), [teamFace]);
  const selfie = await real.getPhoto(name, "yaoming.jpg");
  assert.deepEqual(selfie.faces.map((face) => [face.face_id, face.external_id]), [[selfieFace.face_id, null]]);

  // Forget the person: its last face (the team photo's) goes, and the subject with it; the photo
  // stays with its other faces.
  const forgotten = await real.deletePerson(name, person.person_id);
  assert.deepEqual(forgotten, { person_id: person.person_id, deleted_faces: 1 });
  assert.deepEqual((await real.listPeople(name)).people, []);
  await assert.rejects(real.getSubject(name, "yao-ming"), { name: "FaceServiceError", code: "subject_not_found" });
  const team = await real.getPhoto(name, "players.jpg");
  assert.ok(team.faces.length > 0 && team.faces.every((face) => face.face_id !== teamFace), "its face left the photo");
  const search = await real.searchPhotos(name, await photo("yaoming.jpg"));
  assert.deepEqual(search.photos.map((p) => p.photo_id), ["yaoming.jpg"], "the team photo no longer holds him");
  await real.deleteCollection(name);
});
