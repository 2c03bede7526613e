// POST /api/photos/people/name: a person of the event photos (form field `personId`) and a name
// (`name`). The person's faces are enrolled under an id made from the name, so "Who is in this
// photo?" below it knows them from then on.
import type { NamePersonResult } from "@/lib/api";
import { photosCollectionName } from "@/lib/collection";
import { NameProblem, errorResponse, newRequestId } from "@/lib/errors";
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
    const personId = form?.get("personId");
    // The client refuses an id that is not a person's (400 invalid_person_id) before sending it.
    const named = await faceService().namePerson(photosCollectionName(), typeof personId === "string" ? personId : "", id, { requestId });
    return Response.json({ name, faces: named.labelled_faces, requestId } satisfies NamePersonResult);
  } catch (error) {
    return errorResponse(error, requestId);
  }
}
