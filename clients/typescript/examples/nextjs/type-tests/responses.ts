// Type-checked by `npm run test:types` against the INSTALLED @face-service/client. Were its
// declarations incomplete, every response would be `any`: each `@ts-expect-error` below would then
// be an error itself ("Unused '@ts-expect-error' directive"), and the `NotAny` checks would fail.
import {
  type CollectionExport,
  type CompareFacesResponse,
  type ExtractEmbeddingResponse,
  type Face,
  FaceServiceClient,
  FaceServiceError,
  type SearchResponse,
  type SubjectSummary,
  type VerifyFaceResponse,
} from "@face-service/client";

type NotAny<T> = 0 extends 1 & T ? never : true;
export const notAny: [
  NotAny<ExtractEmbeddingResponse>,
  NotAny<VerifyFaceResponse>,
  NotAny<CompareFacesResponse>,
  NotAny<Face>,
  NotAny<Face["bbox"]>,
  NotAny<Awaited<ReturnType<FaceServiceClient["compareFaces"]>>>,
  NotAny<SearchResponse>,
  NotAny<SearchResponse["results"][number]["decision"]>,
  NotAny<Awaited<ReturnType<FaceServiceClient["enrollFace"]>>>,
  NotAny<SubjectSummary>,
] = [true, true, true, true, true, true, true, true, true, true];

export async function responsesAreTyped(client: FaceServiceClient, photo: Blob): Promise<void> {
  const embedded = await client.extractEmbedding(photo, { allFaces: true });
  // @ts-expect-error: no such field in the response
  void embedded.no_such_field;
  const vector: number[] | null | undefined = embedded.embedding;
  const faces: Face[] | null | undefined = embedded.faces;
  // @ts-expect-error: a confidence is a number
  const confidence: string | null | undefined = embedded.confidence;

  // @ts-expect-error: an embedding is an array of numbers
  await client.compareFaces({ embedding_a: "not an array" });
  const compared = await client.compareFaces({ embedding_a: vector ?? [], embedding_b: faces?.[0]?.embedding ?? [] });
  const similarity: number = compared.similarity;
  const match: boolean = compared.match;
  // @ts-expect-error: no such field in the response
  void compared.no_such_field;

  const verified = await client.verifyFace(photo);
  // @ts-expect-error: face_detected is a boolean
  const detected: string = verified.face_detected;

  try {
    await client.health();
  } catch (error) {
    if (error instanceof FaceServiceError) {
      const retry: boolean = error.retryable;
      // @ts-expect-error: status is a number
      const status: string = error.status;
      void [retry, status];
    }
  }
  void [confidence, similarity, match, detected];
}

export async function collectionsAreTyped(client: FaceServiceClient, photo: Blob): Promise<void> {
  const enrolled = await client.enrollFace("staff", "alice", photo, { face: "largest", minFaceSize: 40 });
  const duplicate: boolean = enrolled.duplicate;
  // @ts-expect-error: face is "one" or "largest"
  await client.enrollFace("staff", "alice", photo, { face: "all" });
  // @ts-expect-error: an embedding comes with its model
  await client.enrollFace("staff", "alice", { embedding: [0.1, 0.2] });

  const found = await client.searchCollection("staff", photo, { faces: "all", topK: 1 });
  for (const { face, matches, decision } of found.results) {
    const who: string | null = decision.external_id;
    const similarity: number | undefined = matches[0]?.similarity;
    const box: number[] | undefined = face?.bbox;
    // @ts-expect-error: a match decision is a boolean
    const match: string = decision.match;
    void [who, similarity, box, match];
  }
  // @ts-expect-error: no such field in the response
  void found.no_such_field;

  for await (const subject of client.iterateSubjects("staff", { limit: 50 })) {
    const id: string = subject.external_id;
    // @ts-expect-error: faces is a count
    const faces: string = subject.faces;
    void [id, faces];
  }
  const exported: CollectionExport = await client.exportCollection("staff");
  const imported = await client.importCollection("copy", exported.body);
  const count: number = imported.imported;
  void [duplicate, count];
}
