// Who is in a photo (form field `photo`): every face in it is searched in a collection (the app's
// unless told); the answer is each face's box and the name of the person it matches, if anyone.
import type { SearchResult } from "@/lib/api";
import { inCollection } from "@/lib/collection";
import { PhotoProblem, errorResponse, newRequestId } from "@/lib/errors";
import { faceService } from "@/lib/face-service";
import { nameOf } from "@/lib/names";

export async function identifyFaces(request: Request, collection?: string): Promise<Response> {
  const requestId = newRequestId();
  try {
    const form = await request.formData().catch(() => undefined);
    const photo = form?.get("photo");
    if (!(photo instanceof Blob)) throw new PhotoProblem("missing_photo");
    const { results } = await inCollection(
      (name) => faceService().searchCollection(name, photo, { faces: "all", topK: 1, requestId }),
      requestId,
      collection,
    );
    // `decision` compares the best match with the collection's threshold: below it, nobody known.
    const faces = results.map(({ face, decision }) => ({
      bbox: face?.bbox ?? [],
      name: decision.match && decision.external_id !== null ? nameOf(decision.external_id) : null,
      similarity: decision.similarity,
    }));
    return Response.json({ faces, requestId } satisfies SearchResult);
  } catch (error) {
    return errorResponse(error, requestId);
  }
}
