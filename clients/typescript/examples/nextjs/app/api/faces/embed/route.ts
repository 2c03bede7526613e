// app/api/faces/embed/route.ts — a Next.js route handler: a browser uploads a photo to your app,
// your server asks face-service for the embedding. The API key stays on the server.
//
// In your app: `import { FaceServiceClient, FaceServiceError } from "@face-service/client";`
import { FaceServiceClient, FaceServiceError } from "../../../../../../src/index.js";

const faces = new FaceServiceClient({
  baseUrl: process.env.PYTHON_AI_SERVICE_URL ?? "http://localhost:8000",
  apiKey: process.env.PYTHON_AI_SERVICE_API_KEY ?? "",
  timeoutMs: 15_000,
});

export async function POST(request: Request): Promise<Response> {
  const form = await request.formData();
  const file = form.get("file");
  if (!(file instanceof Blob)) {
    return Response.json({ error: "Send the photo as a 'file' form field" }, { status: 400 });
  }
  try {
    const result = await faces.extractEmbedding(file);
    if (!result.face_detected) {
      return Response.json({ error: "No face found in the photo" }, { status: 422 });
    }
    // Store `embedding` together with `model`: compare only embeddings of the same model.
    return Response.json({ embedding: result.embedding, model: result.model, bbox: result.bbox });
  } catch (error) {
    if (error instanceof FaceServiceError) {
      // 4xx codes describe the photo (invalid_image, image_too_large...); the rest is ours to fix.
      const status = error.status >= 400 && error.status < 500 && !error.retryable ? 400 : 503;
      return Response.json({ error: error.message, code: error.code }, { status });
    }
    throw error;
  }
}
