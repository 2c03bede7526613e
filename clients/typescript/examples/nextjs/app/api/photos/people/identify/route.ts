// POST /api/photos/people/identify: a photo (form field `photo`). Every face in it is searched among
// the people named in the event photos; the answer is each face's box and its name, if anyone's.
import type { SearchResult } from "@/lib/api";
import { inCollection, photosCollectionName } from "@/lib/collection";
import { PhotoProblem, errorResponse, newRequestId } from "@/lib/errors";
import { faceService } from "@/lib/face-service";
import { nameOf } from "@/lib/names";

export async function POST(request: Request): Promise<Response> {
  const requestId = newRequestId();
  try {
    const form = await request.formData().catch(() => undefined);
    const photo = form?.get("photo");
    if (!(photo instanceof Blob)) throw new PhotoProblem("missing_photo");
    const { results } = await inCollection(
      (collection) => faceService().searchCollection(collection, photo, { faces: "all", topK: 1, requestId }),
      requestId,
      photosCollectionName(),
    );
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
