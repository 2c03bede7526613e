// The app's one FaceServiceClient, made on first use from the server's environment. Only route
// handlers import this file: FACE_SERVICE_URL and FACE_SERVICE_API_KEY never reach a browser.
import { FaceServiceClient } from "@face-service/client";

import { NotConfigured } from "./errors";

let client: FaceServiceClient | undefined;

export function faceService(): FaceServiceClient {
  if (!client) {
    const baseUrl = process.env.FACE_SERVICE_URL;
    const apiKey = process.env.FACE_SERVICE_API_KEY;
    if (!baseUrl || !apiKey) throw new NotConfigured("Set FACE_SERVICE_URL and FACE_SERVICE_API_KEY");
    client = new FaceServiceClient({ baseUrl, apiKey, timeoutMs: 15_000 });
  }
  return client;
}
