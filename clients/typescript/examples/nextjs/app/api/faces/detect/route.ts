// POST /api/faces/detect: the browser sends a photo (form field `photo`) to this app, the server
// asks face-service where the faces are. The answer: every face's box, landmarks and confidence.
import type { DetectResult } from "@/lib/api";
import { PhotoProblem, errorResponse, newRequestId } from "@/lib/errors";
import { faceService } from "@/lib/face-service";

export async function POST(request: Request): Promise<Response> {
  const requestId = newRequestId();
  try {
    const form = await request.formData().catch(() => undefined);
    const photo = form?.get("photo");
    if (!(photo instanceof Blob)) throw new PhotoProblem("missing_photo");
    const result = await faceService().verifyFace(photo, { allFaces: true, requestId });
    const faces = (result.faces ?? []).map(({ bbox, landmarks, confidence }) => ({ bbox, landmarks, confidence }));
    return Response.json({ faces, requestId } satisfies DetectResult);
  } catch (error) {
    return errorResponse(error, requestId);
  }
}
