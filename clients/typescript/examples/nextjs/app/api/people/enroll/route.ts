// POST /api/people/enroll: a name and a photo of that person (form fields `name` and `photo`). The
// photo's one face is enrolled in the app's collection, under an id made from the name.
import type { EnrollResult } from "@/lib/api";
import { inCollection } from "@/lib/collection";
import { NameProblem, PhotoProblem, errorResponse, newRequestId } from "@/lib/errors";
import { faceService } from "@/lib/face-service";
import { MAX_ID_LENGTH, cleanName, subjectId } from "@/lib/names";

export async function POST(request: Request): Promise<Response> {
  const requestId = newRequestId();
  try {
    const form = await request.formData().catch(() => undefined);
    const typed = form?.get("name");
    const name = cleanName(typeof typed === "string" ? typed : "");
    if (!name) throw new NameProblem("missing_name");
    const id = subjectId(name);
    if (id.length > MAX_ID_LENGTH) throw new NameProblem("name_too_long");
    const photo = form?.get("photo");
    if (!(photo instanceof Blob)) throw new PhotoProblem("missing_photo");
    // Exactly one face (else 422 multiple_faces), large enough to be recognised later.
    const enrolled = await inCollection(
      (collection) => faceService().enrollFace(collection, id, photo, { minFaceSize: 40, requestId }),
      requestId,
    );
    return Response.json({ name, duplicate: enrolled.duplicate, requestId } satisfies EnrollResult);
  } catch (error) {
    return errorResponse(error, requestId);
  }
}
