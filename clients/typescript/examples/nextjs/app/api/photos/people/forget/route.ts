// POST /api/photos/people/forget: a person of the event photos (form field `personId`) is forgotten:
// face-service deletes the person and every face of it (a name given goes with its last face). The
// photos stay, with their other faces; uploading one again does not bring the person back.
import type { ForgetPersonResult } from "@/lib/api";
import { photosCollectionName } from "@/lib/collection";
import { errorResponse, newRequestId } from "@/lib/errors";
import { faceService } from "@/lib/face-service";

export async function POST(request: Request): Promise<Response> {
  const requestId = newRequestId();
  try {
    const form = await request.formData().catch(() => undefined);
    const personId = form?.get("personId");
    // The client refuses an id that is not a person's (400 invalid_person_id) before sending it.
    const forgotten = await faceService().deletePerson(photosCollectionName(), typeof personId === "string" ? personId : "", { requestId });
    return Response.json({ faces: forgotten.deleted_faces, requestId } satisfies ForgetPersonResult);
  } catch (error) {
    return errorResponse(error, requestId);
  }
}
