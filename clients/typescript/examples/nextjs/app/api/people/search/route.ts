// POST /api/people/search: a photo (form field `photo`). Every face in it is searched in the app's
// collection; the answer is each face's box and the name of the person it matches, if anyone.
import { identifyFaces } from "@/lib/identify";

export async function POST(request: Request): Promise<Response> {
  return identifyFaces(request);
}
