// GET /api/photos/people: the people found in the event photos (after grouping), the most faces
// first, each with its best face's photo id and box (the page has the photo) and its name if given.
import type { EventPeopleResult } from "@/lib/api";
import { inCollection, photosCollectionName } from "@/lib/collection";
import { errorResponse, newRequestId } from "@/lib/errors";
import { faceService } from "@/lib/face-service";

// Asked afresh each time (the grouping moves on; people change): never rendered once at build.
export const dynamic = "force-dynamic";
import { nameOf } from "@/lib/names";

const SHOWN = 100; // people listed at most: the demo's page, not a gallery

export async function GET(): Promise<Response> {
  const requestId = newRequestId();
  try {
    const page = await inCollection(
      (collection) => faceService().listPeople(collection, { limit: SHOWN, requestId }),
      requestId,
      photosCollectionName(),
    );
    const people = page.people
      .map(({ person_id, faces, representative }) => ({
        personId: person_id,
        faces,
        photoId: representative.photo_id,
        bbox: representative.bbox ?? [],
        name: representative.external_id === null ? null : nameOf(representative.external_id),
      }))
      .sort((a, b) => b.faces - a.faces);
    return Response.json({ people, requestId } satisfies EventPeopleResult);
  } catch (error) {
    return errorResponse(error, requestId);
  }
}
