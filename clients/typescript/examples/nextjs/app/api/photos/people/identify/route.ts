// POST /api/photos/people/identify: a photo (form field `photo`). Every face in it is searched among
// the people named in the event photos; the answer is each face's box and its name, if anyone's.
import { photosCollectionName } from "@/lib/collection";
import { identifyFaces } from "@/lib/identify";

export async function POST(request: Request): Promise<Response> {
  return identifyFaces(request, photosCollectionName());
}
