// POST /api/photos/find: a selfie (form field `selfie`). Its largest face is searched among the
// faces of the indexed photos; the answer is each photo it is in (once, with the face's box in that
// photo), most similar first, down to the collection's match threshold.
import type { FindPhotosResult } from "@/lib/api";
import { inCollection, photosCollectionName } from "@/lib/collection";
import { PhotoProblem, errorResponse, newRequestId } from "@/lib/errors";
import { faceService } from "@/lib/face-service";

export async function POST(request: Request): Promise<Response> {
  const requestId = newRequestId();
  try {
    const form = await request.formData().catch(() => undefined);
    const selfie = form?.get("selfie");
    if (!(selfie instanceof Blob)) throw new PhotoProblem("missing_photo");
    const found = await inCollection(
      (collection) => faceService().searchPhotos(collection, selfie, { topK: 50, requestId }),
      requestId,
      photosCollectionName(),
    );
    // A face indexed from a photo has its box; one enrolled from an embedding (labelled) has none.
    const photos = found.photos.map(({ photo_id, bbox, similarity }) => ({ photoId: photo_id, bbox: bbox ?? [], similarity }));
    return Response.json({ photos, requestId } satisfies FindPhotosResult);
  } catch (error) {
    return errorResponse(error, requestId);
  }
}
