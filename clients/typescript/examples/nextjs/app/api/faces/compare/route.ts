// POST /api/faces/compare: two photos (form fields `a` and `b`); the largest face of each is
// embedded by face-service, then the two embeddings are compared.
import type { CompareResult } from "@/lib/api";
import { PhotoProblem, aboutPhoto, errorResponse, newRequestId } from "@/lib/errors";
import { faceService } from "@/lib/face-service";

export async function POST(request: Request): Promise<Response> {
  const requestId = newRequestId();
  const embed = (photo: unknown, which: string) =>
    aboutPhoto(which, async () => {
      if (!(photo instanceof Blob)) throw new PhotoProblem("missing_photo");
      const result = await faceService().extractEmbedding(photo, { requestId });
      if (!result.embedding) throw new PhotoProblem("no_face");
      // Keep `model` with an embedding: embeddings of different models cannot be compared.
      return { embedding: result.embedding, model: result.model ?? undefined };
    });
  try {
    const form = await request.formData().catch(() => undefined);
    const [a, b] = await Promise.all([embed(form?.get("a"), "the first photo"), embed(form?.get("b"), "the second photo")]);
    const { similarity, match, threshold } = await faceService().compareFaces(
      { embedding_a: a.embedding, embedding_b: b.embedding, model_a: a.model, model_b: b.model },
      { requestId },
    );
    return Response.json({ similarity, match, threshold, requestId } satisfies CompareResult);
  } catch (error) {
    return errorResponse(error, requestId);
  }
}
