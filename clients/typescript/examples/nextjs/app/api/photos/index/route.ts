// POST /api/photos/index: photos (form field `photos`, several). Each is indexed in the app's photo
// collection under a photo id made from its file name: every face in it, stored unlabelled, so that
// a selfie finds it later. face-service keeps no image, only each face's box and embedding. A photo
// the service refuses (no image, too large...) gets its own message; the others are still indexed.
import type { IndexPhotosResult, UploadedPhoto } from "@/lib/api";
import { inCollection, photosCollectionName } from "@/lib/collection";
import { PhotoProblem, errorResponse, newRequestId, toBrowserError } from "@/lib/errors";
import { faceService } from "@/lib/face-service";
import { photoId } from "@/lib/photo-ids";

export async function POST(request: Request): Promise<Response> {
  const requestId = newRequestId();
  try {
    const form = await request.formData().catch(() => undefined);
    const files = (form?.getAll("photos") ?? []).filter((photo): photo is File => photo instanceof File && photo.size > 0);
    if (files.length === 0) throw new PhotoProblem("missing_photo");
    const photos: UploadedPhoto[] = [];
    for (const file of files) {
      const id = photoId(file.name);
      try {
        const indexed = await inCollection(
          (collection) => faceService().indexPhoto(collection, id, file, { requestId }),
          requestId,
          photosCollectionName(),
        );
        photos.push({ file: file.name, photoId: id, faces: indexed.faces.length, duplicate: indexed.duplicate });
      } catch (error) {
        // The photo's fault: said next to it. The service's (unavailable, a wrong key): the whole answer.
        const mapped = toBrowserError(error, requestId);
        if (mapped.status >= 500) throw error;
        photos.push({ file: file.name, photoId: id, error: mapped.body });
      }
    }
    return Response.json({ photos, requestId } satisfies IndexPhotosResult);
  } catch (error) {
    return errorResponse(error, requestId);
  }
}
