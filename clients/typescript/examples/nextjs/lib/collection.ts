// The collection this app enrolls people into and searches: FACE_COLLECTION, or "nextjs-example";
// the event photos go to a second one beside it, FACE_COLLECTION + "-photos".
// It is created on first use, so a fresh face-service needs no setup. Only route handlers import
// this file (through lib/face-service.ts, it holds the API key).
import { FaceServiceError } from "@face-service/client";

import { faceService } from "./face-service";

export function collectionName(): string {
  return process.env.FACE_COLLECTION || "nextjs-example";
}

/** The collection of the "Event photos" demo: FACE_COLLECTION's name with "-photos". */
export function photosCollectionName(): string {
  return `${collectionName()}-photos`;
}

/** Runs `call` on the app's collection (or `collection`); if there is no such collection yet, creates it and runs `call` again. */
export async function inCollection<T>(
  call: (collection: string) => Promise<T>,
  requestId: string,
  collection: string = collectionName(),
): Promise<T> {
  try {
    return await call(collection);
  } catch (error) {
    if (!(error instanceof FaceServiceError && error.code === "collection_not_found")) throw error;
  }
  try {
    await faceService().createCollection(collection, { requestId });
  } catch (error) {
    // Another request created it in the meantime: just as good.
    if (!(error instanceof FaceServiceError && error.code === "collection_exists")) throw error;
  }
  return call(collection);
}
