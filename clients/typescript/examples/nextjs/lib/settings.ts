// Where the app finds face-service: in the server's environment, never sent to a browser. The names
// the original service's README gave Next.js apps come first, PYTHON_AI_SERVICE_URL and
// PYTHON_AI_SERVICE_API_KEY; FACE_SERVICE_URL and FACE_SERVICE_API_KEY are read too.
export const URL_NAMES = ["PYTHON_AI_SERVICE_URL", "FACE_SERVICE_URL"] as const;
export const API_KEY_NAMES = ["PYTHON_AI_SERVICE_API_KEY", "FACE_SERVICE_API_KEY"] as const;

export interface ServiceSettings {
  baseUrl: string;
  apiKey: string;
}

type Environment = Readonly<Record<string, string | undefined>>;

/** The service's URL and API key, each from the first of its names that is set; undefined without both. */
export function serviceSettings(env: Environment): ServiceSettings | undefined {
  const baseUrl = firstSet(env, URL_NAMES);
  const apiKey = firstSet(env, API_KEY_NAMES);
  return baseUrl && apiKey ? { baseUrl, apiKey } : undefined;
}

function firstSet(env: Environment, names: readonly string[]): string | undefined {
  for (const name of names) {
    const value = env[name]?.trim();
    if (value) return value;
  }
  return undefined;
}
