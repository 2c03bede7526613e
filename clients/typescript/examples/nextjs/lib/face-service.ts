// The app's one FaceServiceClient, made on first use from the server's environment (lib/settings.ts).
// Only route handlers import this file: the service's URL and API key never reach a browser.
import { FaceServiceClient } from "@face-service/client";

import { NotConfigured } from "./errors";
import { serviceSettings } from "./settings";

let client: FaceServiceClient | undefined;

export function faceService(): FaceServiceClient {
  if (!client) {
    const settings = serviceSettings(process.env);
    if (!settings) {
      throw new NotConfigured(
        "Set PYTHON_AI_SERVICE_URL and PYTHON_AI_SERVICE_API_KEY (or FACE_SERVICE_URL and FACE_SERVICE_API_KEY)",
      );
    }
    client = new FaceServiceClient({ ...settings, timeoutMs: 15_000 });
  }
  return client;
}
